-- One row per named counter. The product shows the "main" counter today;
-- naming rows now lets more counters come later without a schema rewrite.
create table counters (
    name text primary key
        check (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    hits bigint not null default 0
        check (hits >= 0),
    updated_at timestamptz not null default now()
);

insert into counters (name) values ('main');

---- create above / drop below ----

drop table counters;
