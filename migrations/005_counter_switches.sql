-- The owner's switches of a counter (hitcounter counters switch): whether
-- its page and embeds offer +1 (plus_one), and whether /c/NAME shows a page
-- at all (page). Badges, embeds and the API work either way. The switches
-- travel with the counts in every announcement, so each instance applies a
-- change at once, as it does a reset.
alter table counters
    add column plus_one boolean not null default true,
    add column page boolean not null default true;

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
        'day', d.day, 'views', d.views, 'visitors', d.visitors, 'bots', d.bots, 'filtered', d.filtered,
        'no_plus_one', not new.plus_one, 'no_page', not new.page)::text);
    return null;
end
$$;

---- create above / drop below ----

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

alter table counters drop column plus_one, drop column page;
