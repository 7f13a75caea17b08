package main

// The high-availability suite, `make test-ha` (faults -ha): etcd and three
// Patroni nodes on loopback (internal/patroni) in synchronous_mode_strict,
// two instances of the app on the cluster's multi-host URL
// (target_session_attrs=read-write), 32 clients clicking both, and the
// primary lost in each way a cluster loses it. Each scenario is counted
// like the others (acknowledged ≤ Δ ≤ acknowledged + unknown, the goal
// Δ = acknowledged; unknown answers only where the apps' own late lookups
// account for each), Δ read on whichever node is the primary afterwards,
// with the longest time no click was acknowledged. Then the cluster is
// made whole again for the next one.

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hitcounter/hitcounter/internal/patroni"
)

// haTimeout bounds each step that waits for the cluster: a bootstrap, a
// failover, a node's return.
const haTimeout = 3 * time.Minute

func startHA() (*patroni.Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
	defer cancel()
	start := time.Now()
	c, err := patroni.Start(ctx, patroni.Options{Log: os.Stderr})
	if err != nil {
		return nil, fmt.Errorf("the Patroni cluster: %w", err)
	}
	fmt.Printf("Patroni cluster of %d nodes in %s, up in %s\n", len(c.Nodes()), c.Dir, time.Since(start).Round(100*time.Millisecond))
	return c, nil
}

func haScenarios() []scenario {
	// killed is the node a scenario took down, for its after to bring back.
	var killed string
	rejoin := func(s *suite) error {
		ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
		defer cancel()
		if killed != "" {
			if err := s.ha.StartNode(ctx, killed); err != nil {
				return err
			}
			killed = ""
		}
		return s.ha.WaitHealthy(ctx)
	}
	leader := func(s *suite) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return s.ha.Leader(ctx)
	}
	return []scenario{
		{name: "HA 1. the primary's machine dies (kill -9 of Patroni and PostgreSQL)", ha: true, after: rejoin,
			fault: func(s *suite) error {
				l, err := leader(s)
				if err != nil {
					return err
				}
				killed = l
				return s.ha.KillNode(l)
			}},
		{name: "HA 2. PostgreSQL alone crashes on the primary (kill -9 of the postmaster)", ha: true, after: rejoin,
			fault: func(s *suite) error {
				l, err := leader(s)
				if err != nil {
					return err
				}
				return s.ha.CrashPostgres(l)
			}},
		{name: "HA 3. planned switchover", ha: true, after: rejoin,
			fault: func(s *suite) error {
				ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
				defer cancel()
				return s.ha.Switchover(ctx, "")
			}},
		// COMMITs wait for a standby that hears nothing; the primary dies
		// with them waiting: committed there, on no other node. Their
		// clicks must not be told "counted".
		{name: "HA 4. walsender to the sync standby stopped, COMMITs waiting, then the primary's machine dies", ha: true, after: rejoin,
			fault: func(s *suite) error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				l, err := s.ha.Leader(ctx)
				if err != nil {
					return err
				}
				sync, err := s.ha.SyncStandby(ctx)
				if err != nil {
					return err
				}
				if _, err := s.ha.StopWalsender(sync); err != nil {
					return err
				}
				time.Sleep(2 * time.Second) // COMMITs pile up, waiting
				killed = l
				return s.ha.KillNode(l)
			}},
		// Not a high-availability case, but the one that fooled a lookup by
		// transaction id: on the standalone server (as in make faults).
		{name: "HA 5. a standalone server crashes with a COMMIT in flight, its id reissued before the lookup", proxied: true,
			fault: func(s *suite) error { return s.reissue() }},
	}
}

// haDatabase creates a fresh database on the cluster, and returns its
// multi-host URL.
func (s *suite) haDatabase() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.ha.CreateDatabase(ctx, fmt.Sprintf("hc_ha_%d", time.Now().UnixNano()))
}
