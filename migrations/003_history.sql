-- Views, visitors and bots per counter and day, the visitors of the day
-- (salted hashes only), and an audit of the owner's changes.
--
-- counters.hits stays the total of views. Every hit changes counters and
-- counter_days in one statement (db/counters.go), so the total and the
-- day rows always agree on what was committed.
alter table counters add column created_at timestamptz not null default now();

create table counter_days (
    counter text not null references counters (name) on update cascade on delete cascade,
    -- "today" in the app's configured timezone (TIMEZONE).
    day date not null,
    views bigint not null default 0 check (views >= 0),
    -- distinct visitors of the day: at most one per visitor per counter per day
    visitors bigint not null default 0 check (visitors >= 0),
    -- crawlers, counted apart: neither views nor visitors
    bots bigint not null default 0 check (bots >= 0),
    -- views over a client's burst cap: answered, not counted as views
    filtered bigint not null default 0 check (filtered >= 0),
    primary key (counter, day)
);

-- One random salt per day. A visitor is hmac(salt, counter, client IP,
-- User-Agent); the app deletes a day's salt and hashes once the day is
-- over, so an old hash can neither be recomputed nor linked to a later one.
create table visitor_salts (
    day date primary key,
    salt bytea not null check (length(salt) = 32)
);

create table visitors (
    counter text not null references counters (name) on update cascade on delete cascade,
    day date not null,
    hash bytea not null,
    primary key (counter, day, hash)
);

-- Every change an owner makes (hitcounter counters …), kept after the
-- counter itself is gone, so no foreign key.
create table counter_audit (
    id bigserial primary key,
    at timestamptz not null default now(),
    actor text not null,        -- who ran the command (OS user@host)
    db_role text not null default current_user,
    action text not null,       -- create, set, reset, rename, delete, import
    counter text not null,
    old jsonb,                  -- the counter before (null on create)
    new jsonb                   -- and after (null on delete)
);
create index counter_audit_counter on counter_audit (counter, at);

-- The notification now carries the counter's latest day row too, so
-- instances serve today's views and visitors from memory as well. An AFTER
-- ROW trigger runs once the whole statement is done, so it sees the day row
-- the same statement upserted. A rename announces the old name as deleted.
create or replace function counters_notify() returns trigger
language plpgsql as $$
declare
    d counter_days;
begin
    if tg_op = 'DELETE' or (tg_op = 'UPDATE' and old.name <> new.name) then
        perform pg_notify('counters', json_build_object('name', old.name, 'deleted', true)::text);
        if tg_op = 'DELETE' then
            return null;
        end if;
    end if;
    select * into d from counter_days where counter = new.name order by day desc limit 1;
    perform pg_notify('counters', json_build_object(
        'name', new.name, 'hits', new.hits, 'version', new.version, 'updated', new.updated_at,
        'day', d.day, 'views', d.views, 'visitors', d.visitors, 'bots', d.bots, 'filtered', d.filtered)::text);
    return null;
end
$$;

---- create above / drop below ----

create or replace function counters_notify() returns trigger
language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        perform pg_notify('counters', json_build_object('name', old.name, 'deleted', true)::text);
    else
        perform pg_notify('counters', json_build_object('name', new.name, 'hits', new.hits, 'version', new.version)::text);
    end if;
    return null;
end
$$;

drop table counter_audit;
drop table visitors;
drop table visitor_salts;
drop table counter_days;
alter table counters drop column created_at;
