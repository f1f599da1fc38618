package supervision

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// KeyActorStrategy is the restart strategy for key actors: one-for-one, so a
// fault in one key's actor restarts that actor alone and never its siblings
// or its partition. Handler panics do not get here: the runtime turns them
// into job errors (retried, then dead-lettered) with their stack logged. This
// guards against faults in the actor machinery itself, and logs them.
func KeyActorStrategy(log *slog.Logger) actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(10, time.Minute, func(reason any) actor.Directive {
		log.Error("ordo: key actor failed; restarting it", "reason", reason)
		return actor.RestartDirective
	})
}
