-- One row per write transaction of the app (a batch of hits, an owner's
-- change), inserted by that transaction itself, under a random id the app
-- chose before sending it. A COMMIT whose answer was lost (the connection,
-- the server or its machine died while it was in flight) is looked up by
-- that id (db/resolve.go). A transaction id cannot serve: a server that
-- crashed before the transaction reached its WAL hands the same id out
-- again, and then reports someone else's transaction.
--
-- The look-up inserts the same id as a fence: if the marked transaction
-- is still running, the unique key makes the look-up wait for it; if it
-- committed, its row is there (fence false); if it never did, the fence
-- row now holds the id, so the answer "not committed" can never change.
-- Either way the look-up writes, so its own COMMIT waits for the
-- synchronous standby, and with it the marked transaction's commit, which
-- is earlier in the WAL.
--
-- The ids are time-ordered (UUID version 7): the app deletes rows older
-- than its longest look-up by a range of the primary key.
create table commit_markers (
    id uuid primary key,
    fence boolean not null default false,
    looked_up timestamptz
);

---- create above / drop below ----

drop table commit_markers;
