package kafka

// SetHeartbeatHook has fn told the outcome of each heartbeat c sends; call
// it before Run.
func SetHeartbeatHook(c *Consumer, fn func(error)) { c.heartbeatHook = fn }
