package viamodule

import "github.com/faceharvest/faceharvest/pkg/bus"

var _ bus.Cluster
