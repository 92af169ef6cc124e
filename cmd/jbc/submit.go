package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/spf13/cobra"

	nodeapi "github.com/jbc-project/jbc/node/api"
)

func newSubmitCmd(a *app) *cobra.Command {
	var api string
	cmd := &cobra.Command{
		Use:   "submit TEXT",
		Short: "Hand a data entry to a running node, to be mined into a block",
		Long: `submit hands TEXT to the node whose HTTP API listens on --api. The node keeps
it in its data pool and gossips it to the other nodes; whichever miner finds
the next block puts it in. It prints the entry's id: "GET /data/<id>" on the
API tells whether it is still pending or in which block it landed.`,
		Example: `  jbc submit "hello, chain"
  id=$(jbc submit --json "hello" | jq -r .id); curl 127.0.0.1:8080/data/$id`,
		Args: exactArgs(1, "the entry's text"),
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := apiURL(api)
			if err != nil {
				return err
			}
			client := &http.Client{Timeout: statusTimeout}
			resp, err := client.Post(base+"/data", "text/plain; charset=utf-8", bytes.NewBufferString(args[0]))
			if err != nil {
				return fmt.Errorf("no node answers at %s: %w", api, err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusAccepted {
				var e struct{ Error string }
				json.Unmarshal(body, &e)
				return fmt.Errorf("node refused the entry: %s: %s", resp.Status, e.Error)
			}
			var e nodeapi.EntryJSON
			if err := json.Unmarshal(body, &e); err != nil {
				return fmt.Errorf("node at %s: bad answer: %w", api, err)
			}
			if a.json {
				return a.printJSON(e)
			}
			a.printf("%s %s\n", e.ID, e.Status)
			return nil
		},
	}
	cmd.Flags().StringVar(&api, "api", defaultAPI(), "address of the node's HTTP API (env "+apiEnv+")")
	return cmd
}
