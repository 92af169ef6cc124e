package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/jbc-project/jbc/node"
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
	return node.DefaultHTTPAddr
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
addresses, network, height, tip, total work, peers and whether it is syncing.
It exits non-zero if the node does not answer, so it serves as a health check.`,
		Example: `  jbc status
  jbc status --api 127.0.0.1:8081 --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := &http.Client{Timeout: statusTimeout}
			resp, err := client.Get("http://" + api + "/status")
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
			var st node.StatusJSON
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
			if st.StorageError != "" {
				a.printf("storage     %s\n", st.StorageError)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&api, "api", defaultAPI(), "address of the node's HTTP API (env "+apiEnv+")")
	return cmd
}
