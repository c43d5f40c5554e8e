// Package opmetrics holds the metrics that more than one kind of process
// exports under one name: operations are created by the api (bulk saves,
// cleanup runs started by hand) and by workers (scheduled cleanup runs).
package opmetrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// OperationsCreated registers licenseops_operations_created_total{source,
// queue} with reg, or returns the one already registered there (api and
// worker in one process, `licenseops all`, share a registry).
func OperationsCreated(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "licenseops_operations_created_total", Help: "License operations accepted, by source and queue.",
	}, []string{"source", "queue"})
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, err
	}
	return c, nil
}
