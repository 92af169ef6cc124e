package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jbc-project/jbc/node/discovery"
	"github.com/jbc-project/jbc/node/p2p"
)

// doctorTimeout bounds the wait for a running node's doctor report, which
// dials unconnected peers for a few seconds.
const doctorTimeout = 15 * time.Second

func newDoctorCmd(a *app) *cobra.Command {
	var (
		api    string
		nf     netFlags
		noMDNS bool
		noDHT  bool
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: `Explain why a node does or does not see peers, and what to do`,
		Long: `doctor answers "why can't I see peers?". It asks the node running at --api for
its report (GET /doctor): multicast on each interface, the listen and announced
addresses and whether each is loopback, private, docker-bridge or public, the
DHT mode and routing-table size, the last advertise and find-peers results,
whether bootstrap and known peers can be dialled, and for each problem a plain
sentence saying what to do. With no node running it checks what it can
offline: the interfaces and the addresses a node with the same flags would use.`,
		Example: `  jbc doctor
  jbc doctor --api 127.0.0.1:8081 --json
  jbc doctor --listen /ip4/127.0.0.1/tcp/4747   # offline: would this work?`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base, err := apiURL(api)
			if err != nil {
				return err
			}
			r, err := fetchDoctor(base)
			if err != nil {
				r, err = offlineDoctor(nf, !noMDNS)
				r.Offline, r.OfflineDHT = true, !noDHT
				if err != nil {
					return err
				}
				r.Problems = append([]discovery.Problem{{
					Problem: "No node answers at " + api + ", so only offline checks were made.",
					Fix:     "Start the node (jbc node), or point --api at its HTTP API.",
				}}, r.Problems...)
			}
			if a.json {
				return a.printJSON(r)
			}
			printReport(a, r)
			return nil
		},
	}
	nf.register(cmd)
	cmd.Flags().BoolVar(&noMDNS, "no-mdns", false, "offline checks: the node would run without mDNS")
	cmd.Flags().BoolVar(&noDHT, "no-dht", false, "offline checks: the node would run without the DHT")
	cmd.Flags().StringVar(&api, "api", defaultAPI(), "address of the running node's HTTP API (env "+apiEnv+")")
	return cmd
}

// fetchDoctor asks the node whose API is at base (a URL, see apiURL) for
// its report.
func fetchDoctor(base string) (discovery.Report, error) {
	var r discovery.Report
	client := &http.Client{Timeout: doctorTimeout}
	resp, err := client.Get(base + "/doctor")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return r, err
	}
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("%s", resp.Status)
	}
	return r, json.Unmarshal(body, &r)
}

func offlineDoctor(nf netFlags, mdns bool) (discovery.Report, error) {
	listen, err := p2p.ParseAddrs(nf.listenAddrs())
	if err != nil {
		return discovery.Report{}, usagef("--listen: %v", err)
	}
	announce, err := p2p.ParseAddrs(nf.announce)
	if err != nil {
		return discovery.Report{}, usagef("--announce: %v", err)
	}
	dialable, err := p2p.DialableAddrs(listen, announce)
	if err != nil {
		return discovery.Report{}, err
	}
	r := discovery.Report{
		Interfaces: discovery.CheckInterfaces(),
		Listen:     discovery.CheckAddrs(listen),
		Announce:   discovery.CheckAddrs(dialable),
		MDNS:       mdns,
		Bootstrap:  []discovery.PeerCheck{},
		Peers:      []discovery.PeerCheck{},
		Banned:     []discovery.BanCheck{},
	}
	r.Problems, r.Notes = discovery.OfflineProblems(r.Interfaces, r.Listen, r.Announce, mdns, nil)
	if r.Notes == nil {
		r.Notes = []string{}
	}
	return r, nil
}

func printReport(a *app, r discovery.Report) {
	a.printf("Interfaces\n")
	for _, it := range r.Interfaces {
		var flags []string
		if it.Up {
			flags = append(flags, "up")
		} else {
			flags = append(flags, "down")
		}
		if it.Multicast {
			flags = append(flags, "multicast")
		}
		if it.Loopback {
			flags = append(flags, "loopback")
		}
		a.printf("  %-12s %-24s %s\n", it.Name, strings.Join(flags, ","), strings.Join(it.Addrs, " "))
	}
	a.printf("Listen addresses\n")
	for _, ad := range r.Listen {
		a.printf("  %-14s %s\n", ad.Kind, ad.Addr)
	}
	a.printf("Announced addresses\n")
	for _, ad := range r.Announce {
		a.printf("  %-14s %s\n", ad.Kind, ad.Addr)
	}
	a.printf("mDNS            %v\n", r.MDNS)
	if d := r.DHT; d != nil {
		a.printf("DHT             %s mode, prefix %s, %d peers in the routing table\n", d.Mode, d.Prefix, d.RoutingTable)
		a.printf("  last advertise %s %s\n", when(d.LastAdvertise), d.AdvertiseError)
		a.printf("  last find      %s found %d %s\n", when(d.LastFind), d.LastFound, d.FindError)
	} else if r.Offline && r.OfflineDHT {
		a.printf("DHT             on (server mode); not checked: no node running\n")
	} else {
		a.printf("DHT             off\n")
	}
	if n := r.NAT; n != nil {
		a.printf("Reachability    %s (%s)\n", n.Reachability, n.Source)
		a.printf("  relay service  %s\n", n.RelayService)
		relays := "none"
		if len(n.Relays) > 0 {
			relays = strings.Join(n.Relays, " ")
		}
		a.printf("  reservations   %s\n", relays)
		for _, ad := range n.RelayAddrs {
			a.printf("  relay address  %s\n", ad)
		}
		a.printf("  hole punching  %v\n", n.HolePunching)
	}
	for _, title := range []string{"Bootstrap peers", "Known peers"} {
		list := r.Bootstrap
		if title == "Known peers" {
			list = r.Peers
		}
		a.printf("%s (%d)\n", title, len(list))
		for _, p := range list {
			state := "unreachable: " + p.Error
			switch {
			case p.Connected:
				state = "connected"
			case p.Reachable:
				state = "reachable"
			case !p.ErrorAt.IsZero():
				state += " (last dial " + when(p.ErrorAt) + ")"
			}
			a.printf("  %s %-9s %s\n", p.ID, p.Source, state)
		}
	}
	a.printf("Banned peers (%d)\n", len(r.Banned))
	for _, b := range r.Banned {
		a.printf("  %s %-9s until %s (%s): %s\n", b.ID, b.Source, b.Until.Local().Format(time.TimeOnly), until(b.Until), b.Reason)
	}
	for _, note := range r.Notes {
		a.printf("Note: %s\n", note)
	}
	if len(r.Problems) == 0 {
		a.printf("No problems found.\n")
		return
	}
	a.printf("Problems\n")
	for i, p := range r.Problems {
		a.printf("  %d. %s\n     What to do: %s\n", i+1, p.Problem, p.Fix)
	}
}

// until says how long until t, for a ban's end.
func until(t time.Time) string {
	d := time.Until(t).Round(time.Second)
	if d <= 0 {
		return "ending"
	}
	return "in " + d.String()
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}
