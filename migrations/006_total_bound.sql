-- A counter's total and each day's figures stay at most 2^53 - 1 (db.MaxTotal):
-- the largest integer a JSON reader in a browser holds exactly, and far
-- enough from bigint's end that no sum of two figures wraps. The app
-- refuses more before it writes; the schema holds it too, so psql cannot
-- break a counter either.
alter table counters
    add constraint counters_hits_at_most check (hits <= 9007199254740991);
alter table counter_days
    add constraint counter_days_at_most check (
        views <= 9007199254740991 and visitors <= 9007199254740991
        and bots <= 9007199254740991 and filtered <= 9007199254740991);

---- create above / drop below ----

alter table counter_days drop constraint counter_days_at_most;
alter table counters drop constraint counters_hits_at_most;
