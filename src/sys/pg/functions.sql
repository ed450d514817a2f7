-- The namedmutex schema's functions, revision 11 (schema.rs REVISION). Every statement is
-- CREATE OR REPLACE: schema.rs runs this file after schema.sql on install, and again, in
-- place, on a database whose functions are of an older revision, when the role may (it
-- must own them). Entry points keep their signatures from one revision to the next, so an
-- older library goes on working with newer functions.
--
-- Entry points, what clients call, are SECURITY DEFINER with a fixed search_path (schema.rs
-- sets both after this file), check the caller (session_user) themselves, and are granted
-- to the role namedmutex_user and to the installer, never to PUBLIC. Helpers' names start
-- with an underscore: they run with the rights of the entry point that calls them, and
-- nobody is granted them.
--
-- Revision 2: no function is LANGUAGE sql but list (PostgreSQL plans the query of a
-- LANGUAGE sql function on every call when it cannot inline it, and it never inlines a
-- SECURITY DEFINER one: revision 1's may_use cost about 70 us per acquisition that way, in
-- pgbench), and helpers are not SECURITY DEFINER (each such call saves and restores settings).

-- Revision 3: fencing_gap, which every new session calls, so that fencing tokens keep
-- increasing across a server crash even where claims were committed without waiting for
-- their WAL (synchronous_commit off).
--
-- Revision 4: fencing_gap jumps once after each crash, not in every session: the unlogged
-- table fencing_jumped says it already did. Each jump was a durable write that excluded
-- the others, so sessions that started together waited for each other's WAL flush.

-- Revision 5: wait_granted, which waits as wait does but answers a lock_timeout itself
-- (false, or true where the grant raced it) instead of failing the statement, so that
-- timed-out waits, and the 200 ms slices of cancellable ones, leave no ERROR in the
-- server's log; and it answers the race in the same round trip.
--
-- Revision 6: wait_granted answers a cancel too (a dropped async wait's, or a
-- statement_timeout's), which logged "ERROR: canceling statement due to user request" for
-- every dropped wait; it says so at DEBUG1 instead. open_handle with p_finish: a create
-- that takes no initial ownership finishes in the same round trip.
--
-- Revision 7: a new object's open_handle clears the last owner's claim even while that
-- owner's session still holds the lock (see open_handle).
--
-- Revision 8: wait_granted, having caught a cancel, waits (at most 20 ms) for the same
-- request's second signal, which could otherwise land after it returned and fail the
-- statement (see _second_signal).
--
-- Revision 9: a new object whose name's last owner still holds the lock (an owner that
-- closed every handle and lives on, or a killed one whose owning session the server has
-- not ended yet) gets a new id, so that it is free at once, as on Windows, instead of
-- waiting for that owner's thread or session to end (see open_handle).
--
-- Revision 10: list leaves out a name whose object has no handle and whose owner lives: as
-- on Windows, and with the local backends, that name ended with its last handle.
--
-- Revision 11: list counts each object's locks once (it looked them up again to choose its
-- rows); open_handle names the new id it gives. Nothing else changes.

-- Revision 1's helpers, under their old names.
DROP FUNCTION IF EXISTS namedmutex.may_use(namedmutex.mutex);
DROP FUNCTION IF EXISTS namedmutex.session_holds(int, int, text);
DROP FUNCTION IF EXISTS namedmutex.usable(int);

-- The revision of these functions (schema.rs REVISION).
CREATE OR REPLACE FUNCTION namedmutex.revision() RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN 11;
END $$;

-- Whether the session's role may use mutex m.
CREATE OR REPLACE FUNCTION namedmutex._may_use(m namedmutex.mutex) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN CASE WHEN m.scope <> '' THEN m.scope = session_user::text
                ELSE m.everyone OR m.creator = session_user::text END;
END $$;

-- Whether the calling session holds the lock (class, id) in mode.
CREATE OR REPLACE FUNCTION namedmutex._session_holds(class int, p_id int, p_mode text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM pg_catalog.pg_locks
                   WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()
                     AND classid = class::oid AND objid = p_id::oid AND objsubid = 2
                     AND mode = p_mode AND granted);
END $$;

-- The mutex p_id, if the caller may use it; raises otherwise.
CREATE OR REPLACE FUNCTION namedmutex._usable(p_id int) RETURNS namedmutex.mutex
LANGUAGE plpgsql STABLE AS $$
DECLARE m namedmutex.mutex;
BEGIN
    SELECT * INTO m FROM namedmutex.mutex WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'namedmutex: no mutex with id %', p_id USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT namedmutex._may_use(m) THEN
        RAISE EXCEPTION 'namedmutex: role % may not use the mutex "%", created by role %',
            session_user, m.name, m.creator USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN m;
END $$;

-- Opens a handle to Global\ (p_global) or Local\ p_name for the calling session, creating
-- the object when p_create and no handle to it exists anywhere. status: 'created' (the
-- caller holds the exclusive handle lock until finish_create), 'opened', 'missing', or
-- 'busy' (another session is creating it right now: try again).
CREATE OR REPLACE FUNCTION namedmutex.open_handle(p_global boolean, p_name text, p_create boolean,
                                       p_everyone boolean, p_keep_abandoned boolean,
                                       OUT status text, OUT id int, OUT creator text)
LANGUAGE plpgsql AS $$
DECLARE
    m namedmutex.mutex;
    v_scope text := CASE WHEN p_global THEN '' ELSE session_user::text END;
    v_new int;
BEGIN
    IF p_create THEN
        INSERT INTO namedmutex.mutex (scope, name, creator, everyone)
        VALUES (v_scope, p_name, session_user::text, p_everyone)
        ON CONFLICT (scope, name) DO NOTHING;
    END IF;
    -- The row lock serializes opening and creating one name.
    SELECT * INTO m FROM namedmutex.mutex WHERE scope = v_scope AND name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        status := 'missing';
        RETURN;
    END IF;
    id := m.id;
    IF pg_catalog.pg_try_advisory_lock(1852665602, m.id) THEN
        -- Nobody has a handle: the object does not exist.
        IF NOT p_create THEN
            PERFORM pg_catalog.pg_advisory_unlock(1852665602, m.id);
            status := 'missing';
            RETURN;
        END IF;
        -- The lock of the last object's owner may outlive its handles: an owner that
        -- closed every handle and lives on, or a killed one whose owning session the server
        -- ends after its handle session. That ownership is the old object's. Unless its
        -- claim is kept for the next acquirer (which then waits for that session to end, and
        -- is told Abandoned), the new object takes a new id, which nobody holds: it is free
        -- at once, and a release by the old owner through it is refused (not its owner), as
        -- on Windows. The old id is left to that session alone (no row, no handle).
        IF NOT p_keep_abandoned THEN
            IF pg_catalog.pg_try_advisory_lock(1852665601, m.id) THEN
                PERFORM pg_catalog.pg_advisory_unlock(1852665601, m.id);
            ELSE
                UPDATE namedmutex.mutex SET id = DEFAULT WHERE mutex.id = m.id
                RETURNING mutex.id INTO v_new;
                -- The creator's handle lock moves with it (nobody else knows the new id
                -- before this commits).
                PERFORM pg_catalog.pg_advisory_lock(1852665602, v_new);
                PERFORM pg_catalog.pg_advisory_unlock(1852665602, m.id);
                m.id := v_new;
                id := v_new;
            END IF;
        END IF;
        UPDATE namedmutex.mutex SET creator = session_user::text, everyone = p_everyone,
                                    created_at = now()
        WHERE mutex.id = m.id;
        -- A new object starts free, as on Windows, unless the claim of an owner that died is
        -- kept for the next acquirer (MutexOptions::keep_abandoned). Cleared even while the
        -- last owner's session still holds the lock: that claim is the old object's. After
        -- a kill, the server may end the killed process's handle session before its owning
        -- session (revision 6 kept the claim then, and the new object's first acquirer was
        -- told Abandoned); that session's end then finds no claim of its own to mark.
        IF m.held AND NOT p_keep_abandoned THEN
            UPDATE namedmutex.mutex SET held = false, owner = NULL, abandon_note = NULL
            WHERE mutex.id = m.id;
        END IF;
        status := 'created';
        creator := session_user::text;
        RETURN;
    END IF;
    creator := m.creator;
    IF NOT namedmutex._may_use(m) THEN
        RAISE EXCEPTION 'namedmutex: role % may not open the Global\ mutex "%", created by role % (for every role, create it with Security::Everyone / --everyone)',
            session_user, p_name, m.creator USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF pg_catalog.pg_try_advisory_lock_shared(1852665602, m.id) THEN
        status := 'opened';
    ELSE
        status := 'busy';
    END IF;
END $$;

-- open_handle, and with p_finish, finish_create at once after 'created' (one round trip
-- where the creator takes no initial ownership first). Revision 6.
CREATE OR REPLACE FUNCTION namedmutex.open_handle(p_global boolean, p_name text, p_create boolean,
                                       p_everyone boolean, p_keep_abandoned boolean,
                                       p_finish boolean,
                                       OUT status text, OUT id int, OUT creator text)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT o.status, o.id, o.creator INTO status, id, creator
    FROM namedmutex.open_handle(p_global, p_name, p_create, p_everyone, p_keep_abandoned) o;
    IF status = 'created' AND p_finish THEN
        PERFORM namedmutex.finish_create(id);
    END IF;
END $$;

-- After 'created': the creator's handle becomes a shared one like every other.
CREATE OR REPLACE FUNCTION namedmutex.finish_create(p_id int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT namedmutex._session_holds(1852665602, p_id, 'ExclusiveLock') THEN
        RAISE EXCEPTION 'namedmutex: finish_create of % without creating it', p_id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM pg_catalog.pg_advisory_lock_shared(1852665602, p_id);
    PERFORM pg_catalog.pg_advisory_unlock(1852665602, p_id);
END $$;

-- Closes one of the calling session's handles to p_id: false when it held none.
CREATE OR REPLACE FUNCTION namedmutex.close_handle(p_id int) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RETURN pg_catalog.pg_advisory_unlock_shared(1852665602, p_id);
END $$;

-- A row here means the fencing sequence jumped since the server last crashed. Crash
-- recovery, and nothing else, empties an unlogged table: also the recovery after one
-- backend is killed, when the postmaster (and pg_postmaster_start_time) stays; a clean
-- shutdown keeps it; a standby promoted in a failover starts with it empty. That is exactly
-- when claims made with synchronous_commit off may have handed out tokens whose sequence
-- record was lost.
CREATE UNLOGGED TABLE IF NOT EXISTS namedmutex.fencing_jumped (at timestamptz NOT NULL);
REVOKE ALL ON namedmutex.fencing_jumped FROM PUBLIC;

-- Moves the fencing sequence 2^24 ahead, and waits for that to reach the disk, whatever the
-- session's synchronous_commit, once after each crash: every session calls it when it
-- starts, and all but the first after a crash only read fencing_jumped. A claim made with
-- synchronous_commit off may hand out a token whose sequence record a server crash then
-- loses, so that after recovery the sequence would hand it out again; but no session from
-- before the crash survives it, every session after it starts beyond this durable jump, and
-- no server hands out 2^24 tokens between two flushes of its WAL (the WAL writer flushes
-- within a second). A clean shutdown flushes the sequence's record: no jump is needed
-- after it. Jumps exclude each other (a jump computed from an older position could
-- otherwise move the sequence back); the second look, under the lock, sees a jump that
-- committed while this session waited (each statement of a function reads afresh).
CREATE OR REPLACE FUNCTION namedmutex.fencing_gap() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM namedmutex.fencing_jumped) THEN
        RETURN;
    END IF;
    PERFORM pg_catalog.set_config('synchronous_commit', 'on', true);
    PERFORM pg_catalog.pg_advisory_xact_lock(1852665604, 0);
    IF EXISTS (SELECT 1 FROM namedmutex.fencing_jumped) THEN
        RETURN;
    END IF;
    PERFORM pg_catalog.setval('namedmutex.fencing', pg_catalog.nextval('namedmutex.fencing') + 16777216);
    INSERT INTO namedmutex.fencing_jumped VALUES (pg_catalog.now());
END $$;

-- Claims p_id for p_me after the lock was granted: returns whether the last owner died
-- holding it (abandoned), its note, and the new fencing token. The row lock (FOR UPDATE)
-- waits for a releaser's clearing of the claim to commit, so a release is never read as a
-- death. A helper: claim, try_acquire and try_acquire_all call it.
CREATE OR REPLACE FUNCTION namedmutex._claim(p_id int, p_me uuid, p_host text, p_pid int, p_tid int,
                                 OUT abandoned boolean, OUT note text, OUT token bigint)
LANGUAGE plpgsql AS $$
DECLARE m namedmutex.mutex;
BEGIN
    SELECT * INTO m FROM namedmutex.mutex WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        -- An id open_handle gave out whose object is gone (its name now has a new id: a
        -- session that lost its handles), or one it never gave out.
        PERFORM pg_catalog.pg_advisory_unlock(1852665601, p_id);
        RAISE EXCEPTION 'namedmutex: no mutex with id % (the object is gone)', p_id
            USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT namedmutex._may_use(m) THEN
        PERFORM pg_catalog.pg_advisory_unlock(1852665601, p_id);
        RAISE EXCEPTION 'namedmutex: role % may not use mutex %', session_user, p_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    abandoned := m.held;
    note := CASE WHEN m.held THEN coalesce(m.abandon_note, format('owner %s pid %s thread %s died holding it',
                                                         m.holder_host, m.holder_pid, m.holder_tid)) END;
    token := pg_catalog.nextval('namedmutex.fencing');
    UPDATE namedmutex.mutex SET held = true, owner = p_me, holder_host = p_host,
        holder_pid = p_pid, holder_tid = p_tid, acquired_at = now(), last_token = token,
        abandon_note = NULL, abandon_count = abandon_count + (CASE WHEN m.held THEN 1 ELSE 0 END),
        last_abandoner_host = CASE WHEN m.held THEN m.holder_host ELSE last_abandoner_host END,
        last_abandoner_pid = CASE WHEN m.held THEN m.holder_pid ELSE last_abandoner_pid END,
        last_abandoner_tid = CASE WHEN m.held THEN m.holder_tid ELSE last_abandoner_tid END,
        last_abandon_note = CASE WHEN m.held THEN m.abandon_note ELSE last_abandon_note END
    WHERE id = p_id;
END $$;

-- Claims p_id after a wait: see _claim.
CREATE OR REPLACE FUNCTION namedmutex.claim(p_id int, p_me uuid, p_host text, p_pid int, p_tid int,
                                 OUT abandoned boolean, OUT note text, OUT token bigint)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT c.abandoned, c.note, c.token INTO abandoned, note, token
    FROM namedmutex._claim(p_id, p_me, p_host, p_pid, p_tid) c;
END $$;

-- Takes p_id if it is free (no waiting): got, and _claim's answers (it checks the caller).
CREATE OR REPLACE FUNCTION namedmutex.try_acquire(p_id int, p_me uuid, p_host text, p_pid int, p_tid int,
                                       OUT got boolean, OUT abandoned boolean, OUT note text,
                                       OUT token bigint)
LANGUAGE plpgsql AS $$
BEGIN
    got := pg_catalog.pg_try_advisory_lock(1852665601, p_id);
    IF got THEN
        SELECT c.abandoned, c.note, c.token INTO abandoned, note, token
        FROM namedmutex._claim(p_id, p_me, p_host, p_pid, p_tid) c;
    END IF;
END $$;

-- Waits for p_id's lock (then the client calls claim): at most p_timeout_ms (0: forever),
-- as lock_timeout for this statement only (SQLSTATE 55P03 when it passes).
CREATE OR REPLACE FUNCTION namedmutex.wait(p_id int, p_timeout_ms int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM namedmutex._usable(p_id);
    PERFORM pg_catalog.set_config('lock_timeout', p_timeout_ms::text, true);
    PERFORM pg_catalog.pg_advisory_lock(1852665601, p_id);
END $$;

-- Called by a handler that caught a cancel: waits, 20 ms at most, for the same request's
-- second signal, and catches it. The postmaster answers a cancel request by signalling the
-- backend, then its process group; the first signal can wake this backend before the
-- second is sent (on a loaded machine the woken backend takes the CPU at once), and a
-- function that caught the first and returned would have its statement failed by the
-- second. ERRORs that fit this (no PL/pgSQL context, on waits that were never granted) came
-- in about one run in six of the behavioural suite, and in one of four runs of 80 cancelled
-- waits beside it; none in 36 and 6 runs after revision 8. Only a wait that was cancelled
-- pays the sleep, and nobody waits for that one (a request goes only for a dropped wait).
CREATE OR REPLACE FUNCTION namedmutex._second_signal() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.pg_sleep(0.02);
EXCEPTION WHEN query_canceled THEN
    -- The request's second signal.
END $$;

-- Waits for p_id's lock as wait does, at most p_timeout_ms (0: forever): whether it is
-- this session's now. A lock_timeout, and a cancel (the client's, when an async wait is
-- dropped; or a statement_timeout's), are caught (a block's subtransaction is undone; a
-- session-level lock granted meanwhile is not) and answered: false, or true when the grant
-- raced them. The client looks again after false unless it is the one that cancelled, as
-- it did when the statement failed. A cancel is said at DEBUG1 (not logged by default),
-- where the server logged an ERROR before.
--
-- Why three nested blocks: one cancel request can interrupt twice (the postmaster signals
-- the backend and then its process group, and the second signal may arrive after the
-- first was handled), and a lock_timeout interrupts by a signal of its own; PL/pgSQL looks
-- for interrupts before every statement, handlers' included. Each interrupt after the
-- first lands in the block around the one that caught it, up to the outermost, so only a
-- cancel that arrives before the function starts still fails the statement. A deadlock
-- still fails it, as with wait.
--
-- Why a handler that caught a cancel then calls _second_signal (revision 8): see there.
CREATE OR REPLACE FUNCTION namedmutex.wait_granted(p_id int, p_timeout_ms int) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        BEGIN
            PERFORM namedmutex._usable(p_id);
            PERFORM pg_catalog.set_config('lock_timeout', p_timeout_ms::text, true);
            PERFORM pg_catalog.pg_advisory_lock(1852665601, p_id);
            RETURN true;
        EXCEPTION WHEN lock_not_available THEN
            -- Answered below: the grant may have raced the timeout.
        END;
    EXCEPTION WHEN query_canceled THEN
        RAISE DEBUG 'namedmutex: the wait for mutex % was cancelled', p_id;
        PERFORM namedmutex._second_signal();
    END;
    RETURN namedmutex._session_holds(1852665601, p_id, 'ExclusiveLock');
EXCEPTION WHEN query_canceled THEN
    RAISE DEBUG 'namedmutex: the wait for mutex % was cancelled', p_id;
    PERFORM namedmutex._second_signal();
    RETURN namedmutex._session_holds(1852665601, p_id, 'ExclusiveLock');
END $$;

-- Whether the calling session holds p_id's lock (a grant racing a lock_timeout).
CREATE OR REPLACE FUNCTION namedmutex.granted(p_id int) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN namedmutex._session_holds(1852665601, p_id, 'ExclusiveLock');
END $$;

-- Takes every mutex of p_ids if all are free, else none: one row per id, in order, or no
-- rows. It looks before it takes, as the local backends do: taking the free ones one by one
-- and giving them back at the first busy one would, for that moment, keep another session
-- from a mutex that was free.
CREATE OR REPLACE FUNCTION namedmutex.try_acquire_all(p_ids int[], p_me uuid, p_host text, p_pid int,
                                           p_tid int)
RETURNS TABLE (abandoned boolean, note text, token bigint)
LANGUAGE plpgsql AS $$
DECLARE
    i int;
    taken int := 0;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_locks
               WHERE locktype = 'advisory' AND classid = 1852665601::oid
                 AND objid = ANY (p_ids::oid[]) AND objsubid = 2 AND granted
                 AND pid <> pg_catalog.pg_backend_pid()) THEN
        RETURN;
    END IF;
    FOR i IN 1 .. pg_catalog.array_length(p_ids, 1) LOOP
        PERFORM namedmutex._usable(p_ids[i]);
        IF NOT pg_catalog.pg_try_advisory_lock(1852665601, p_ids[i]) THEN
            FOR j IN 1 .. taken LOOP
                PERFORM pg_catalog.pg_advisory_unlock(1852665601, p_ids[j]);
            END LOOP;
            RETURN;
        END IF;
        taken := i;
    END LOOP;
    FOR i IN 1 .. pg_catalog.array_length(p_ids, 1) LOOP
        RETURN QUERY SELECT * FROM namedmutex._claim(p_ids[i], p_me, p_host, p_pid, p_tid);
    END LOOP;
END $$;

-- Releases p_id: clears the claim of p_me (or, with p_note, leaves it standing with the note:
-- abandonment on purpose), then unlocks. 0: released; 1: the claim was not p_me's (ownership
-- was lost: the session ended and another took it). SQLSTATE NMX02: this session did not
-- hold the lock (a transaction pooler between client and server), and nothing changed.
CREATE OR REPLACE FUNCTION namedmutex.release(p_id int, p_me uuid, p_note text) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE n int;
BEGIN
    -- A release need not wait for its WAL to reach the disk: if a server crash loses it,
    -- the claim stands and the next owner is told Abandoned, which errs on the safe side.
    -- (A claim does wait: it carries the fencing token, which must never be handed out twice.)
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    UPDATE namedmutex.mutex SET held = (p_note IS NOT NULL), abandon_note = p_note,
        owner = CASE WHEN p_note IS NULL THEN NULL ELSE owner END
    WHERE id = p_id AND owner = p_me AND held;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- The claim is cleared (row locked) before the lock goes: the next owner's claim waits
    -- for this commit, so it never reads a release as a death.
    IF NOT pg_catalog.pg_advisory_unlock(1852665601, p_id) THEN
        -- Not this session's lock: the update is undone with the statement.
        RAISE EXCEPTION 'namedmutex: this session does not hold the lock of mutex %', p_id
            USING ERRCODE = 'NMX02';
    END IF;
    -- Wake the multi-object waits on it, if any: each holds a shared lock on
    -- (1852665603, id) while it waits, so a free exclusive one means nobody listens.
    IF pg_catalog.pg_try_advisory_lock(1852665603, p_id) THEN
        PERFORM pg_catalog.pg_advisory_unlock(1852665603, p_id);
    ELSE
        PERFORM pg_catalog.pg_notify('namedmutex_' || p_id, '');
    END IF;
    RETURN CASE WHEN n = 1 THEN 0 ELSE 1 END;
END $$;

-- A multi-object wait starts (p_on) or ends watching p_ids: it listens for their releases
-- and shows release that it does (a shared lock on (1852665603, id) each).
CREATE OR REPLACE FUNCTION namedmutex.watch(p_ids int[], p_on boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE i int;
BEGIN
    FOREACH i IN ARRAY p_ids LOOP
        IF p_on THEN
            EXECUTE format('LISTEN %I', 'namedmutex_' || i);
            PERFORM pg_catalog.pg_advisory_lock_shared(1852665603, i);
        ELSE
            EXECUTE format('UNLISTEN %I', 'namedmutex_' || i);
            PERFORM pg_catalog.pg_advisory_unlock_shared(1852665603, i);
        END IF;
    END LOOP;
END $$;

-- Whether p_me still owns p_id (its session holds the lock and the claim is its own).
CREATE OR REPLACE FUNCTION namedmutex.still_owned(p_id int, p_me uuid) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN namedmutex._session_holds(1852665601, p_id, 'ExclusiveLock')
       AND EXISTS (SELECT 1 FROM namedmutex.mutex WHERE id = p_id AND owner = p_me AND held);
END $$;

-- The objects of a namespace the caller can see (p_name: one of them), with the live facts
-- from pg_locks: handles, waiters, and whether the owner's session still holds the lock.
CREATE OR REPLACE FUNCTION namedmutex.list(p_global boolean, p_name text)
RETURNS TABLE (name text, creator text, everyone boolean, accessible boolean,
               created_at timestamptz, handles int, waiters int, owner_alive boolean,
               held boolean, holder_host text, holder_pid int, holder_tid int,
               acquired_at timestamptz, token bigint, note text, abandon_count int,
               last_abandoner_pid int, last_abandoner_tid int, last_abandon_note text)
LANGUAGE sql STABLE AS $$
    WITH locks AS (
        SELECT objid::int AS id, classid::int AS class, mode, granted
        FROM pg_catalog.pg_locks
        WHERE locktype = 'advisory' AND objsubid = 2 AND classid IN (1852665601, 1852665602)
    )
    SELECT m.name, m.creator, m.everyone, namedmutex._may_use(m), m.created_at,
        c.handles, c.waiters, c.owner_alive,
        m.held, m.holder_host, m.holder_pid, m.holder_tid, m.acquired_at, m.last_token, m.abandon_note,
        m.abandon_count, m.last_abandoner_pid, m.last_abandoner_tid, m.last_abandon_note
    FROM namedmutex.mutex m,
         -- Its locks, counted once: handles, waiters, and whether the owner's session holds it.
         LATERAL (SELECT (count(*) FILTER (WHERE l.class = 1852665602 AND l.granted))::int AS handles,
                         (count(*) FILTER (WHERE l.class = 1852665601 AND NOT l.granted))::int AS waiters,
                         coalesce(bool_or(l.class = 1852665601 AND l.granted), false) AS owner_alive
                  FROM locks l WHERE l.id = m.id) c
    WHERE m.scope = CASE WHEN p_global THEN '' ELSE session_user::text END
      AND (p_name IS NULL OR m.name = p_name)
      -- Objects with a handle, and those whose dead owner's claim stands (kept for the
      -- report of its death). Not a name whose last handle closed while its owner lives on
      -- (its object is the owner's alone, and a create makes a new one: open_handle).
      AND (c.handles > 0 OR (m.held AND NOT c.owner_alive))
    ORDER BY m.name
$$;


-- The schema version, for clients to refuse one they do not know.
CREATE OR REPLACE FUNCTION namedmutex.version() RETURNS int
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT version FROM namedmutex.meta);
END $$;

-- Another handle to p_id for the calling session (DuplicateHandle): the caller holds one.
CREATE OR REPLACE FUNCTION namedmutex.dup_handle(p_id int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.pg_advisory_lock_shared(1852665602, p_id);
END $$;

-- Removes the rows of objects that no longer exist and that record no abandonment (or, with
-- p_reported, whatever they record): returns how many were removed and how many were kept
-- because they record an abandonment nobody was told about.
CREATE OR REPLACE FUNCTION namedmutex.prune(p_global boolean, p_reported boolean,
                                 OUT removed int, OUT kept int)
LANGUAGE plpgsql AS $$
DECLARE m namedmutex.mutex;
BEGIN
    removed := 0;
    kept := 0;
    FOR m IN SELECT * FROM namedmutex.mutex
             WHERE scope = CASE WHEN p_global THEN '' ELSE session_user::text END
               AND namedmutex._may_use(mutex)
             FOR UPDATE SKIP LOCKED LOOP
        IF pg_catalog.pg_try_advisory_lock(1852665602, m.id) THEN
            -- Nobody has a handle; and if nobody owns it either, the row may go.
            IF pg_catalog.pg_try_advisory_lock(1852665601, m.id) THEN
                IF m.held AND NOT p_reported THEN
                    kept := kept + 1;
                ELSE
                    DELETE FROM namedmutex.mutex WHERE id = m.id;
                    removed := removed + 1;
                END IF;
                PERFORM pg_catalog.pg_advisory_unlock(1852665601, m.id);
            END IF;
            PERFORM pg_catalog.pg_advisory_unlock(1852665602, m.id);
        END IF;
    END LOOP;
END $$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA namedmutex FROM PUBLIC;
