-- bench/profile/pg_floor.sh: the two calls with no write at all (the advisory lock alone,
-- through the same functions): what the plpgsql entry points cost beyond the bare pair.
CREATE OR REPLACE FUNCTION namedmutex.try_acquire(p_id int, p_me uuid, p_host text, p_pid int, p_tid int,
                                       OUT got boolean, OUT abandoned boolean, OUT note text,
                                       OUT token bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    got := pg_catalog.pg_try_advisory_lock(1852665601, p_id);
    abandoned := false;
END $$;

CREATE OR REPLACE FUNCTION namedmutex.release(p_id int, p_me uuid, p_note text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE unlocked boolean;
BEGIN
    unlocked := pg_catalog.pg_advisory_unlock(1852665601, p_id);
    RETURN 0;
END $$;
