SELECT pg_try_advisory_lock(1852665601, :id);
SELECT pg_advisory_unlock(1852665601, :id);
