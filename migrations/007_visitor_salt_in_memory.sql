-- The salt that keys visitor hashes no longer lives in the database: the
-- running instances hold it in memory and share it among themselves
-- (db/visitors.go), so nobody with the database's files, WAL or backups can
-- recompute a hash from an address. A stored hash is bound to the
-- counter's id, not its name, so a rename keeps today's visitors.
--
-- The hashes made under the stored salts go with it: truncate, not delete,
-- so their file is unlinked at commit rather than left for vacuum. Today's
-- visitor counts stay; a visitor seen earlier today counts again once.
alter table counters add column id bigint generated always as identity;
alter table counters add constraint counters_id_key unique (id);
truncate visitors;
drop table visitor_salts;

-- Visitors are distinct viewers among the day's views. Not valid: rows
-- imported before this rule are left as they are; new ones must keep it.
alter table counter_days
    add constraint counter_days_visitors_within_views check (visitors <= views) not valid;

---- create above / drop below ----

alter table counter_days drop constraint counter_days_visitors_within_views;
create table visitor_salts (
    day date primary key,
    salt bytea not null check (length(salt) = 32)
);
truncate visitors;
alter table counters drop column id;
