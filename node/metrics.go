package node

import (
	"errors"
	"math/big"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/storage"
)

// hashRateWindow is the interval over which the miner's hash rate is
// measured: long enough to smooth the batches the miner counts in.
const hashRateWindow = 5 * time.Second

// Block sources, the "via" label of jbc_blocks_received_total.
const (
	viaSync   = "sync"
	viaGossip = "gossip"
	viaMiner  = "miner"
	viaOrphan = "orphan"
	viaLegacy = "legacy"
)

// nodeMetrics holds the node's Prometheus metrics. Event counters are
// updated where the events happen; everything else is read from the node
// when scraped.
type nodeMetrics struct {
	reg       *prometheus.Registry
	bandwidth *metrics.BandwidthCounter

	received   *prometheus.CounterVec
	accepted   *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	admitted   *prometheus.CounterVec
	misbehaved *prometheus.CounterVec

	mu       sync.Mutex
	lastHash uint64
	lastAt   time.Time
	rate     float64
}

func newNodeMetrics(n *Node) *nodeMetrics {
	m := &nodeMetrics{
		reg:       prometheus.NewRegistry(),
		bandwidth: metrics.NewBandwidthCounter(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jbc_blocks_received_total", Help: "Blocks received or made, by how they came.",
		}, []string{"via"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jbc_blocks_accepted_total", Help: "Blocks validated and stored, by how they came.",
		}, []string{"via"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jbc_blocks_rejected_total", Help: "Blocks refused, by reason (the consensus rule broken, or orphan).",
		}, []string{"reason"}),
		admitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jbc_admission_total", Help: "Inbound connections refused or closed by admission, by outcome.",
		}, []string{"outcome"}),
		misbehaved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jbc_misbehaviour_total", Help: "Penalties given to peers, by kind of misbehaviour.",
		}, []string{"what"}),
	}
	// Go runtime and process metrics come from the default registry, which
	// /metrics gathers too.
	m.reg.MustRegister(m.received, m.accepted, m.rejected, m.admitted, m.misbehaved, &nodeCollector{n: n})
	return m
}

// observe records the outcome of adding blocks that came via.
func (m *nodeMetrics) observe(via string, blocks int, res storage.Result, err error) {
	m.received.WithLabelValues(via).Add(float64(blocks))
	m.accepted.WithLabelValues(via).Add(float64(res.Added))
	if err == nil {
		return
	}
	var re *chain.RuleError
	switch {
	case errors.As(err, &re):
		m.rejected.WithLabelValues(re.Code.String()).Inc()
	case errors.Is(err, storage.ErrOrphan):
		m.rejected.WithLabelValues("orphan").Inc()
	case errors.Is(err, storage.ErrNotLinked):
		m.rejected.WithLabelValues("not-linked").Inc()
	}
}

// admission counts an outcome of admission (package peering).
func (m *nodeMetrics) admission(outcome string) { m.admitted.WithLabelValues(outcome).Inc() }

// hashRate returns the miner's hashes per second over the last window,
// and 0 while the miner is off: a rate measured before it stopped would
// be stale, and the first window after it starts again begins afresh.
func (m *nodeMetrics) hashRate(attempts uint64, mining bool) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if !mining {
		m.lastAt, m.rate = time.Time{}, 0
		return 0
	}
	if m.lastAt.IsZero() {
		m.lastHash, m.lastAt = attempts, now
		return 0
	}
	if d := now.Sub(m.lastAt); d >= hashRateWindow {
		m.rate = float64(attempts-m.lastHash) / d.Seconds()
		m.lastHash, m.lastAt = attempts, now
	}
	return m.rate
}

// nodeCollector reads the node's state at scrape time.
type nodeCollector struct{ n *Node }

var (
	descHeight    = prometheus.NewDesc("jbc_height", "Height of the best chain.", nil, nil)
	descWork      = prometheus.NewDesc("jbc_total_work", "Cumulative work of the best chain (as a float).", nil, nil)
	descPeers     = prometheus.NewDesc("jbc_peers", "Connected peers, by how they were found.", []string{"source"}, nil)
	descSyncing   = prometheus.NewDesc("jbc_syncing", "1 while a sync is under way.", nil, nil)
	descSyncTgt   = prometheus.NewDesc("jbc_sync_target_height", "Height the current sync aims at (0 when idle).", nil, nil)
	descOrphans   = prometheus.NewDesc("jbc_orphans", "Gossiped blocks waiting for their parent.", nil, nil)
	descPool      = prometheus.NewDesc("jbc_pool_entries", "Pending data entries.", nil, nil)
	descHashes    = prometheus.NewDesc("jbc_hashes_total", "Hashes tried by the miner.", nil, nil)
	descHashRate  = prometheus.NewDesc("jbc_hash_rate", "Miner hashes per second over the last few seconds.", nil, nil)
	descBytes     = prometheus.NewDesc("jbc_protocol_bytes_total", "Bytes sent and received per libp2p protocol.", []string{"protocol", "direction"}, nil)
	descBanned    = prometheus.NewDesc("jbc_banned_peers", "Peers currently refused.", nil, nil)
	descGossipRes = prometheus.NewDesc("jbc_gossip_blocks_total", "Gossiped blocks by validation result.", []string{"result"}, nil)
	descIndex     = prometheus.NewDesc("jbc_store_index_bytes", "Memory the store holds to find blocks by hash (grows with the chain).", nil, nil)
)

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHeight, descWork, descPeers, descSyncing, descSyncTgt, descOrphans,
		descPool, descHashes, descHashRate, descBytes, descBanned, descGossipRes, descIndex} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	tip := n.store.Tip()
	ch <- prometheus.MustNewConstMetric(descHeight, prometheus.GaugeValue, float64(tip.Height))
	work, _ := new(big.Float).SetInt(tip.Work).Float64()
	ch <- prometheus.MustNewConstMetric(descWork, prometheus.GaugeValue, work)
	ch <- prometheus.MustNewConstMetric(descIndex, prometheus.GaugeValue, float64(n.store.IndexBytes()))

	bySource := map[peering.Source]int{peering.SourceMDNS: 0, peering.SourceDHT: 0, peering.SourceBootstrap: 0, peering.SourceDirect: 0, peering.SourceInbound: 0}
	for _, pi := range n.peers.List() {
		if n.host.Network().Connectedness(pi.ID) == network.Connected {
			bySource[pi.Source]++
		}
	}
	for src, k := range bySource {
		ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(k), string(src))
	}
	prog := n.sync.Progress()
	syncing := 0.0
	if prog.Syncing {
		syncing = 1
	}
	ch <- prometheus.MustNewConstMetric(descSyncing, prometheus.GaugeValue, syncing)
	ch <- prometheus.MustNewConstMetric(descSyncTgt, prometheus.GaugeValue, float64(prog.Target))
	orphans := 0
	if n.gossip != nil {
		orphans = n.gossip.Orphans().Len()
		ch <- prometheus.MustNewConstMetric(descGossipRes, prometheus.CounterValue, float64(n.gossip.Accepted()), "accepted")
		ch <- prometheus.MustNewConstMetric(descGossipRes, prometheus.CounterValue, float64(n.gossip.Rejected()), "rejected")
		ch <- prometheus.MustNewConstMetric(descGossipRes, prometheus.CounterValue, float64(n.gossip.Ignored()), "ignored")
	}
	ch <- prometheus.MustNewConstMetric(descOrphans, prometheus.GaugeValue, float64(orphans))
	ch <- prometheus.MustNewConstMetric(descPool, prometheus.GaugeValue, float64(n.pool.Size()))
	attempts := n.miner.Attempts()
	ch <- prometheus.MustNewConstMetric(descHashes, prometheus.CounterValue, float64(attempts))
	ch <- prometheus.MustNewConstMetric(descHashRate, prometheus.GaugeValue, n.metrics.hashRate(attempts, n.Mining()))
	for proto, st := range n.metrics.bandwidth.GetBandwidthByProtocol() {
		p := string(proto)
		if p == "" {
			p = "unknown"
		}
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(st.TotalIn), p, "in")
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(st.TotalOut), p, "out")
	}
	ch <- prometheus.MustNewConstMetric(descBanned, prometheus.GaugeValue, float64(n.peers.BannedCount()))
}
