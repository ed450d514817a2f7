-- The namedmutex schema's data, version 1: the table and the sequence (schema.rs installs
-- this, then functions.sql, on first use, in one transaction). The version changes only with
-- the data's layout; the functions have a revision of their own (functions.sql), which a
-- newer library brings up to date in place.
--
-- Who owns a mutex is a session-level advisory lock: key (1852665601, id) in the int4-pair
-- space, held by the owning thread's session. A process's open handles are shared locks on
-- (1852665602, id), held by its handle session; an object exists while one is held. The row
-- of a mutex records the claim of its owner (held, owner, holder_*) so that the next owner
-- can tell a release from a death (abandonment). Ids come from an identity column: names
-- are never hashed. Rows outlive their objects; fencing tokens come from one sequence, so
-- they increase per name even across a prune and a server restart.

CREATE SCHEMA namedmutex;

CREATE TABLE namedmutex.meta (version int NOT NULL);
INSERT INTO namedmutex.meta VALUES (1);

CREATE SEQUENCE namedmutex.fencing;

CREATE TABLE namedmutex.mutex (
    id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope text NOT NULL,                 -- '' for Global\, the owning role for Local\
    name text NOT NULL,
    creator text NOT NULL,               -- the role that created the current object
    everyone boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    held boolean NOT NULL DEFAULT false, -- an owner's claim (true after a death: abandoned)
    owner uuid,                          -- the owning session's random id
    holder_host text,
    holder_pid int,
    holder_tid int,
    acquired_at timestamptz,
    last_token bigint NOT NULL DEFAULT 0, -- fencing token of the last acquisition
    abandon_note text,                   -- why the owner abandoned it on purpose (while held)
    abandon_count int NOT NULL DEFAULT 0,
    last_abandoner_host text,            -- the last owner found abandoned, and its note
    last_abandoner_pid int,
    last_abandoner_tid int,
    last_abandon_note text,
    UNIQUE (scope, name)
);
REVOKE ALL ON ALL TABLES IN SCHEMA namedmutex FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA namedmutex FROM PUBLIC;
REVOKE ALL ON SCHEMA namedmutex FROM PUBLIC;
