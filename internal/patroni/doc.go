// Package patroni runs a throwaway high-availability PostgreSQL cluster on
// loopback — one etcd member and (by default) three Patroni nodes — so that
// tests and the fault suite can do to a replicated database what happens to
// one in production: a machine vanishes (KillNode), the postmaster crashes
// under a live Patroni (CrashPostgres), an operator switches over
// (Switchover), a synchronous standby stalls (StopWalsender), and then see
// what the app sees through URL, the multi-host read-write URL pgx follows
// to whichever node is primary.
//
// The cluster runs with production's settings: each node's configuration
// is deploy/patroni.yml (TemplateFile, found from the module's root) with
// only what a loopback test machine must change laid over it: scope, node
// names, ports, folders, passwords, pg_hba's addresses, memory, the
// watchdog (off), a fast base backup, and throwaway data directories
// (nodeConfig lists them; TestNodeConfig checks that nothing else differs).
// So it runs in synchronous_mode_strict, as production does: an
// acknowledged COMMIT is on two nodes and a failover never loses it; the
// price is that the primary refuses to commit while it has no synchronous
// standby, which is what the fault tests want to observe.
//
// Choices worth knowing:
//
//   - DCS: Patroni talks to etcd through its etcd3 module, which in Patroni
//     3.x speaks etcd's v3 JSON gateway over plain HTTP with urllib3 (no
//     grpcio needed; it only borrows exception classes from python3-etcd,
//     which scripts/deps installs). etcd 3.4 serves that gateway by default,
//     whereas the v2 API ("etcd:") would need --enable-v2 and is gone in
//     etcd 3.6.
//   - Ports: etcd, Patroni and PostgreSQL cannot be handed a listener, so each
//     gets random ports below Linux's ephemeral range, and a process whose log
//     says its port was taken is started again on new ones (a few tries). A
//     port that is taken later, while a killed node is down, is not changed:
//     URL must stay valid, so StartNode then fails.
//   - Users: as root, Patroni and PostgreSQL run as the 'postgres' user
//     (PostgreSQL refuses root); etcd runs as the caller.
//   - Cleanup: every process is started in its own process group with a
//     parent-death signal, PostgreSQL's processes (which Patroni detaches
//     with setsid) are found by their data directory and by cluster_name in
//     their process titles, and a small watchdog shell kills whatever is left
//     of the cluster if the calling program dies without calling Stop (a
//     test timeout, a panic, a signal).
package patroni
