-- The pipeline's roles, each with the least privilege its process needs. Run as a superuser, connected to
-- the database the pipeline uses (compose: `ingest`; any name works, none is written here):
--
--   psql -v ON_ERROR_STOP=1 -v owner_password=... -v inserter_password=... \
--        -v debezium_password=... -v analyst_password=... [-v redriver_password=...] \
--        -d ingest -f docker/postgres/roles.sql
--
-- compose runs it once, when the data volume is first initialised (docker/postgres/init-roles.sh). It is
-- idempotent: a second run creates nothing new, resets the passwords and attributes to the given ones, and
-- grants on tables that already exist.
--
--   ingest_owner  LOGIN: owns the schema objects; `migration up` runs as it (CREATE on schema public, and
--                 CREATE on the database for the publication `ingest_cdc`).
--   inserter      LOGIN: SELECT, INSERT, UPDATE on ingest_owner's tables in schema public (SELECT alone on
--                 seaql_migrations: marking a migration applied is the owner's); EXECUTE on the partition
--                 maintenance; no DDL, no DELETE, nothing in schema ingest (the owner's settings).
--   redriver      `inserter redrive`: what the inserter may do, and DELETE on ingest_errors alone (it deletes
--                 the dead letters it re-drives). LOGIN when -v redriver_password=... is given, else NOLOGIN.
--   debezium      LOGIN REPLICATION: SELECT on the tables of publication ingest_cdc alone. pgoutput with a
--                 publication created by the migrations (publication.autocreate.mode=disabled) needs nothing
--                 more: REPLICATION to create and read the slot, SELECT for the initial snapshot.
--   analyst       LOGIN, read-only (SELECT, read-only transactions), with statement and idle timeouts.
--
-- No role but ingest_owner may create temporary tables (TEMPORARY is revoked from PUBLIC): a temporary table
-- shadows a table of the same name for relations looked up through search_path.
--
-- Passwords come only from the psql variables; they are never written in this file. A role's table
-- privileges come from ingest_owner's default privileges in this database, so tables a later migration
-- creates get them without another run.

\set ON_ERROR_STOP on

-- Every password must be given and non-empty. Missing variables are caught before any statement carries the
-- others' values (an error would echo its statement); an empty password would silently leave the role unable
-- to log in with a password.
\if :{?owner_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: set -v owner_password=...'; END $$;
\endif
\if :{?inserter_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: set -v inserter_password=...'; END $$;
\endif
\if :{?debezium_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: set -v debezium_password=...'; END $$;
\endif
\if :{?analyst_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: set -v analyst_password=...'; END $$;
\endif
\if :{?redriver_password}
\else
\set redriver_password ''
\endif
SELECT :'owner_password' = '' OR :'inserter_password' = '' OR :'debezium_password' = ''
    OR :'analyst_password' = '' AS roles_sql_empty_password \gset
\if :roles_sql_empty_password
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: a password variable is empty (every role needs a password)'; END $$;
\endif

BEGIN;

-- Roles are cluster-wide: create the missing ones, then (re)set every attribute and password.
SELECT format('CREATE ROLE %I', name)
FROM unnest(ARRAY['ingest_owner', 'inserter', 'redriver', 'debezium', 'analyst']) AS name
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name)
\gexec

ALTER ROLE ingest_owner WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';
ALTER ROLE inserter WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'inserter_password';
-- redriver logs in only when given a password: most installs never re-drive.
SELECT :'redriver_password' = '' AS roles_sql_no_redriver_password \gset
\if :roles_sql_no_redriver_password
ALTER ROLE redriver WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD NULL;
\else
ALTER ROLE redriver WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'redriver_password';
\endif
GRANT inserter TO redriver;
ALTER ROLE debezium WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE REPLICATION NOBYPASSRLS
    PASSWORD :'debezium_password';
ALTER ROLE analyst WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'analyst_password';

-- A stuck batch fails and is retried rather than holding locks forever.
ALTER ROLE inserter SET statement_timeout = '60s';
ALTER ROLE redriver SET statement_timeout = '60s';
-- People: a runaway query or a forgotten open transaction is ended for them.
ALTER ROLE analyst SET statement_timeout = '5min';
ALTER ROLE analyst SET idle_in_transaction_session_timeout = '10min';
ALTER ROLE analyst SET default_transaction_read_only = on;

-- The database: every role may connect; ingest_owner may also create in it (CREATE PUBLICATION needs CREATE
-- on the database). Written with current_database() so the script works in any database.
SELECT format('GRANT CONNECT ON DATABASE %I TO ingest_owner, inserter, redriver, debezium, analyst',
              current_database())
\gexec
SELECT format('GRANT CREATE, TEMPORARY ON DATABASE %I TO ingest_owner', current_database())
\gexec
SELECT format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database())
\gexec

-- Schema public: only ingest_owner creates objects there (PostgreSQL 15 already revokes CREATE from PUBLIC in
-- a new cluster; an older or upgraded one may not have).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO ingest_owner;
GRANT USAGE ON SCHEMA public TO inserter, debezium, analyst;
-- Schema ingest (the owner's settings, made by a migration) is the owner's alone.
SELECT 'REVOKE ALL ON SCHEMA ingest FROM inserter, redriver, debezium, analyst'
 WHERE EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'ingest')
\gexec

-- pg_partman, which manages the partitioned tables: only a superuser may create the extension. ingest_owner
-- owns the partition sets: it registers them (the migrations) and makes and drops their partitions.
CREATE SCHEMA IF NOT EXISTS partman;
CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman;
GRANT ALL ON SCHEMA partman TO ingest_owner;
GRANT ALL ON ALL TABLES IN SCHEMA partman TO ingest_owner;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA partman TO ingest_owner;
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA partman TO ingest_owner;

-- Tables and sequences ingest_owner creates from now on (the migrations, seaql_migrations included).
ALTER DEFAULT PRIVILEGES FOR ROLE ingest_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE ON TABLES TO inserter;
ALTER DEFAULT PRIVILEGES FOR ROLE ingest_owner IN SCHEMA public
    GRANT SELECT ON TABLES TO analyst;
-- debezium reads the published tables alone (granted below, and by the migration that publishes a table);
-- earlier versions of this script gave it every table by default.
ALTER DEFAULT PRIVILEGES FOR ROLE ingest_owner IN SCHEMA public
    REVOKE SELECT ON TABLES FROM debezium;
ALTER DEFAULT PRIVILEGES FOR ROLE ingest_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO inserter;
ALTER DEFAULT PRIVILEGES FOR ROLE ingest_owner IN SCHEMA public
    GRANT SELECT ON SEQUENCES TO analyst;

-- Tables and sequences ingest_owner already owns (this script run again after the migrations).
SELECT format('GRANT SELECT, INSERT, UPDATE ON TABLE %I.%I TO inserter', schemaname, tablename)
FROM pg_tables WHERE schemaname = 'public' AND tableowner = 'ingest_owner' AND tablename <> 'seaql_migrations'
\gexec
SELECT 'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE public.seaql_migrations FROM inserter'
 WHERE to_regclass('public.seaql_migrations') IS NOT NULL
\gexec
SELECT 'GRANT DELETE ON TABLE public.ingest_errors TO redriver' WHERE to_regclass('public.ingest_errors') IS NOT NULL
\gexec
SELECT format('GRANT SELECT ON TABLE %I.%I TO analyst', schemaname, tablename)
FROM pg_tables WHERE schemaname = 'public' AND tableowner = 'ingest_owner'
\gexec
SELECT format('REVOKE ALL ON TABLE %I.%I FROM debezium', schemaname, tablename)
FROM pg_tables WHERE schemaname = 'public' AND tableowner = 'ingest_owner'
\gexec
SELECT format('GRANT SELECT ON TABLE %I.%I TO debezium', schemaname, tablename)
FROM pg_publication_tables WHERE pubname = 'ingest_cdc'
\gexec
-- Views, for the analysts (the default privileges above cover a view as a table); the inserter uses none.
SELECT format('GRANT SELECT ON TABLE %I.%I TO analyst', schemaname, viewname)
FROM pg_views WHERE schemaname = 'public' AND viewowner = 'ingest_owner'
\gexec
SELECT format('GRANT USAGE, SELECT ON SEQUENCE %I.%I TO inserter', schemaname, sequencename)
FROM pg_sequences WHERE schemaname = 'public' AND sequenceowner = 'ingest_owner'
\gexec
SELECT format('GRANT SELECT ON SEQUENCE %I.%I TO analyst', schemaname, sequencename)
FROM pg_sequences WHERE schemaname = 'public' AND sequenceowner = 'ingest_owner'
\gexec

-- The partition maintenance the inserter runs (a migration grants it too, when this script ran first).
SELECT format('GRANT EXECUTE ON FUNCTION %s TO inserter', oid::regprocedure)
FROM pg_proc WHERE proname = 'ingest_partition_maintenance' AND pronamespace = 'public'::regnamespace
\gexec

COMMIT;
