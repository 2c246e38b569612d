// Package rungroup runs a process's parts together: each has a run and an
// interrupt; the first to return interrupts the others, and Run waits for
// all of them (after oklog/run).
package rungroup

// Group is a set of actors.
type Group struct {
	actors []actor
}

type actor struct {
	run       func() error
	interrupt func(error)
}

// Add adds an actor. run must return after interrupt is called.
func (g *Group) Add(run func() error, interrupt func(error)) {
	g.actors = append(g.actors, actor{run, interrupt})
}

// Run starts every actor, returns the first one's error after all have
// returned. With no actors it returns nil.
func (g *Group) Run() error {
	if len(g.actors) == 0 {
		return nil
	}
	errs := make(chan error, len(g.actors))
	for _, a := range g.actors {
		go func(a actor) { errs <- a.run() }(a)
	}
	err := <-errs
	for _, a := range g.actors {
		a.interrupt(err)
	}
	for i := 1; i < len(g.actors); i++ {
		<-errs
	}
	return err
}
