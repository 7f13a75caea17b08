-- The app's own database role: it reads and writes the counters' rows and
-- nothing more. The database's owner keeps the schema and runs the
-- migrations; the app cannot create, alter or drop anything, not even a
-- temporary table, and cannot change the schema version.
--
-- Run it with psql (15 or newer) in the app's database, as the database's
-- owner or a superuser, after the migrations. It is idempotent and sets the
-- app role's privileges exactly, so run it again whenever you like:
--
--   compose      the app-role service runs it at every `docker compose up`,
--                after migrate and before web (as POSTGRES_USER)
--   bare metal   sudo -u postgres psql -d hitcounter -f deploy/app-role.sql
--
-- Settings, as psql variables (-v NAME=VALUE) or environment variables:
--
--   app_role      APP_DB_USER      the role's name; default hitcounter_app
--   app_password  APP_DB_PASSWORD  its password, set at every run; none
--                                  given: the password stays as it is (set
--                                  one with psql's \password, which sends
--                                  only a hash)
--
-- What the app role gets: CONNECT on this database; USAGE on schema public;
-- SELECT, INSERT, UPDATE, DELETE on its tables and USAGE on its sequences
-- (counter_audit's id), today's and, through the owner's default
-- privileges, those of later migrations; only SELECT on schema_version
-- (tern's table, which /readyz reads). Functions keep their default:
-- anyone may execute them (pg_advisory_xact_lock, pg_notify, the triggers').
-- It loses everything else it may have held here; PUBLIC loses CONNECT and
-- TEMPORARY on this database and CREATE on schema public.

\set ON_ERROR_STOP on
\if :{?app_role}
\else
  \getenv app_role APP_DB_USER
\endif
\if :{?app_role}
\else
  \set app_role hitcounter_app
\endif
\if :{?app_password}
\else
  \getenv app_password APP_DB_PASSWORD
\endif
\if :{?app_password}
\else
  \set app_password ''
\endif

-- One transaction: an app connected meanwhile never sees its grants gone.
-- The settings pass into the block below as transaction-local parameters,
-- which end with it.
begin;
select set_config('hitcounter.app_role', :'app_role', true),
       set_config('hitcounter.app_password', :'app_password', true) \g /dev/null

do $body$
declare
    app   text := current_setting('hitcounter.app_role');
    pw    text := current_setting('hitcounter.app_password');
    db    text := current_database();
    dbowner text;
    r     pg_roles;
    held  text;
    n     bigint;
begin
    select pg_get_userbyid(datdba) into dbowner from pg_database where datname = db;
    if app = '' then
        raise exception 'app-role.sql: the app role''s name is empty';
    end if;
    if app = dbowner then
        raise exception 'app-role.sql: % owns database %: the app needs a role of its own (APP_DB_USER)', app, db;
    end if;

    select * into r from pg_roles where rolname = app;
    if not found then
        -- NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS:
        -- the defaults.
        execute format('create role %I login', app);
        raise notice 'app-role.sql: created role %', app;
        if pw = '' then
            raise warning 'app-role.sql: role % has no password yet: set one (psql: \password %)', app, app;
        end if;
    else
        if r.rolsuper or r.rolcreatedb or r.rolcreaterole or r.rolreplication or r.rolbypassrls then
            execute format('alter role %I nosuperuser nocreatedb nocreaterole noreplication nobypassrls', app);
            raise notice 'app-role.sql: took role % its superuser, createdb, createrole, replication and bypassrls attributes', app;
        end if;
        if not r.rolcanlogin then
            execute format('alter role %I login', app);
        end if;
    end if;
    -- Another role's privileges would come with a membership.
    select string_agg(pg_get_userbyid(roleid), ', ') into held
    from pg_auth_members where member = (select oid from pg_roles where rolname = app);
    if held is not null then
        raise exception 'app-role.sql: role % is a member of %: the app must hold no other role''s privileges (REVOKE ... FROM %)', app, held, app;
    end if;
    if pw <> '' then
        execute format('alter role %I password %L', app, pw);
    end if;

    -- The database: connect, nothing else (no temporary tables).
    execute format('revoke all on database %I from public', db);
    execute format('revoke all on database %I from %I', db, app);
    execute format('grant connect on database %I to %I', db, app);

    -- The schema: look up its objects, create none. PostgreSQL 15 and newer
    -- give PUBLIC no CREATE here already; older databases did.
    revoke create on schema public from public;
    execute format('revoke all on schema public from %I', app);
    execute format('grant usage on schema public to %I', app);

    -- The rows of every table, and the sequences that number them.
    execute format('revoke all on all tables in schema public from %I', app);
    execute format('grant select, insert, update, delete on all tables in schema public to %I', app);
    execute format('revoke all on all sequences in schema public from %I', app);
    execute format('grant usage on all sequences in schema public to %I', app);
    -- The schema version is the migrations' business: the app reads it.
    if to_regclass('public.schema_version') is not null then
        execute format('revoke insert, update, delete on public.schema_version from %I', app);
    end if;

    -- Tables and sequences that later migrations create as the owner.
    execute format('alter default privileges for role %I in schema public revoke all on tables from %I', dbowner, app);
    execute format('alter default privileges for role %I in schema public grant select, insert, update, delete on tables to %I', dbowner, app);
    execute format('alter default privileges for role %I in schema public revoke all on sequences from %I', dbowner, app);
    execute format('alter default privileges for role %I in schema public grant usage on sequences to %I', dbowner, app);

    select count(*) into n from pg_class c join pg_namespace s on s.oid = c.relnamespace
    where s.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f') and c.relname <> 'schema_version';
    raise notice 'app-role.sql: role % may select, insert, update and delete the rows of % tables of database % (owner %), read schema_version, and create nothing',
        app, n, db, dbowner;
end
$body$;

commit;
