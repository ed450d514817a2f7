SELECT got, abandoned, token FROM namedmutex.try_acquire(:id, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'pg-floor', 1, 1);
SELECT namedmutex.release(:id, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', NULL);
