package discovery

// NATCheck is the doctor's view of the node's reachability from outside
// (package nat fills it in a running node): whether it is publicly
// reachable and who decided, its relay service, the relays holding a
// reservation for it and whether it can hole-punch.
type NATCheck struct {
	Reachability string   `json:"reachability"`
	Source       string   `json:"reachability_source"`
	RelayService string   `json:"relay_service"`
	Relays       []string `json:"relays"`
	RelayAddrs   []string `json:"relay_addrs"`
	HolePunching bool     `json:"hole_punching"`
}
