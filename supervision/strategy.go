package supervision

import (
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
)

// KeyActorStrategy is the supervision strategy for key actors: it logs the
// failure and restarts the failing key actor alone, never its siblings or its
// partition, and never gives up on it. A key actor that stopped would strand
// the records queued at it, and its partition could no longer commit past
// them, so restarting is the only safe directive; the restarted actor runs
// its record again after a back-off.
//
// Job panics do not get here: package jobs turns them into failed attempts
// (retried, then dead-lettered) with their stack logged. What this guards is
// a fault in the actor machinery itself, or a raw actors.Handler that
// panics.
func KeyActorStrategy(log *slog.Logger) actor.SupervisorStrategy {
	return &restartKeyActor{log: log}
}

type restartKeyActor struct{ log *slog.Logger }

// HandleFailure implements actor.SupervisorStrategy.
func (s *restartKeyActor) HandleFailure(_ *actor.ActorSystem, supervisor actor.Supervisor, child *actor.PID,
	_ *actor.RestartStatistics, reason, _ any) {
	s.log.Error("ordo: key actor failed; restarting it", "actor", child.Id, "reason", reason)
	supervisor.RestartChildren(child)
}
