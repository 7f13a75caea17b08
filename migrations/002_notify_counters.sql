-- Every change to a counter is announced on the channel "counters", so each
-- app instance keeps the latest committed values in memory and serves reads
-- without a query. Triggers rather than app code, so changes made by hand in
-- psql reach the instances too.
--
-- version orders the announcements: it grows by one on every update, so an
-- instance that reloads all counters after a reconnect can tell an older
-- notification (already in what it loaded) from a newer one, even once
-- counters can go down (a reset).
alter table counters add column version bigint not null default 0;

create function counters_bump_version() returns trigger
language plpgsql as $$
begin
    new.version := old.version + 1;
    return new;
end
$$;

create trigger counters_bump_version
    before update on counters
    for each row execute function counters_bump_version();

-- NOTIFY is delivered at commit, in commit order, and only if the
-- transaction commits: listeners never see a value that was rolled back.
create function counters_notify() returns trigger
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

create trigger counters_notify
    after insert or update or delete on counters
    for each row execute function counters_notify();

---- create above / drop below ----

drop trigger counters_notify on counters;
drop function counters_notify();
drop trigger counters_bump_version on counters;
drop function counters_bump_version();
alter table counters drop column version;
