package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	nodeapi "github.com/jbc-project/jbc/node/api"
)

// apiEnv names the environment variable giving the default --api of the
// commands that talk to a running node: set it where the node's API is not
// on 127.0.0.1:8080 (a container started with another --http, say).
const apiEnv = "JBC_API"

// defaultAPI is $JBC_API, else the node's default HTTP address.
func defaultAPI() string {
	if v := os.Getenv(apiEnv); v != "" {
		return v
	}
	return nodeapi.DefaultHTTPAddr
}

// apiURL turns an --api value into the base URL of a node's HTTP API. It
// takes HOST:PORT, as --http is given to "jbc node", and http:// URLs
// alike (with or without a trailing /); an https:// URL is kept as is.
// Anything else, a path after the address or another scheme, is a usage
// error naming the form wanted.
func apiURL(api string) (string, error) {
	s := strings.TrimSpace(api)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", usagef("--api %q: want HOST:PORT or http://HOST:PORT, like %s", api, nodeapi.DefaultHTTPAddr)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", usagef("--api %q: the node's API speaks http, not %s: want HOST:PORT or http://HOST:PORT", api, u.Scheme)
	}
	if u.Host == "" || u.Port() == "" && !strings.Contains(api, "://") {
		return "", usagef("--api %q: want HOST:PORT or http://HOST:PORT, like %s", api, nodeapi.DefaultHTTPAddr)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", usagef("--api %q: give the node's address only, without a path: HOST:PORT or http://HOST:PORT", api)
	}
	return u.Scheme + "://" + u.Host, nil
}

// statusTimeout bounds the request to the node's HTTP API: it answers from
// memory, so a node that takes longer is not healthy.
const statusTimeout = 5 * time.Second

func newStatusCmd(a *app) *cobra.Command {
	var api string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print a running node's status (from its HTTP API)",
		Long: `status asks the node whose HTTP API listens on --api for its status: peer ID,
addresses, network, height, tip, total work, peers, whether it is syncing,
whether it mines, its hash rate and how many data entries wait to be mined.
--api takes HOST:PORT or an http:// URL.
It exits non-zero if the node does not answer, so it serves as a health check.`,
		Example: `  jbc status
  jbc status --api 127.0.0.1:8081 --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base, err := apiURL(api)
			if err != nil {
				return err
			}
			client := &http.Client{Timeout: statusTimeout}
			resp, err := client.Get(base + "/status")
			if err != nil {
				return fmt.Errorf("no node answers at %s: %w", api, err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("node at %s: %s", api, resp.Status)
			}
			var st nodeapi.StatusJSON
			if err := json.Unmarshal(body, &st); err != nil {
				return fmt.Errorf("node at %s: bad status: %w", api, err)
			}
			if a.json {
				return a.printJSON(st)
			}
			a.printf("peer id     %s\n", st.PeerID)
			for _, ad := range st.Addrs {
				a.printf("addr        %s\n", ad)
			}
			a.printf("network     %s\nheight      %d\ntip         %s\ntotal work  %s\npeers       %d\nsyncing     %v\n",
				st.Network, st.Height, st.Tip, st.TotalWork, st.Peers, st.Syncing)
			if st.Syncing {
				a.printf("sync        height %d of %d\n", st.Sync.Height, st.Sync.Target)
			}
			mining := "off"
			if st.Mining {
				mining = "on"
			}
			a.printf("mining      %s\nhash rate   %s\npending     %d\n", mining, hashRate(st.HashRate), st.Pending)
			if st.StorageError != "" {
				a.printf("storage     %s\n", st.StorageError)
			}
			if st.Reachability != "" {
				reach := st.Reachability + " (" + st.Source + ")"
				if len(st.Relays) > 0 {
					reach += ", relays " + strings.Join(st.Relays, " ")
				}
				a.printf("reachable   %s\nrelay svc   %s\n", reach, st.RelayService)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&api, "api", defaultAPI(), "address of the node's HTTP API (env "+apiEnv+")")
	return cmd
}
