-- bench/profile/pg_floor.sh: the two calls of an acquire + release cut to what no claim can
-- do without, one single-row UPDATE each (no permission check, no row lock before the
-- update, no fencing token, no abandonment report, no notify), with the entry points'
-- signatures and SECURITY DEFINER kept. Installed over a scratch server's functions only.
CREATE OR REPLACE FUNCTION namedmutex.try_acquire(p_id int, p_me uuid, p_host text, p_pid int, p_tid int,
                                       OUT got boolean, OUT abandoned boolean, OUT note text,
                                       OUT token bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    got := pg_catalog.pg_try_advisory_lock(1852665601, p_id);
    IF got THEN
        UPDATE namedmutex.mutex SET held = true, owner = p_me WHERE id = p_id;
        abandoned := false;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION namedmutex.release(p_id int, p_me uuid, p_note text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE unlocked boolean;
BEGIN
    UPDATE namedmutex.mutex SET held = false, owner = NULL WHERE id = p_id;
    unlocked := pg_catalog.pg_advisory_unlock(1852665601, p_id);
    RETURN 0;
END $$;
