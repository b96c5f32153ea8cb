package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// groupCollector exports a group.Stats snapshot taken at scrape time.
// Per-stream series are labelled by group, topic and range (the sub-range's
// index); consumer ids are not labels (they come and go).
type groupCollector struct {
	src GroupSource

	consumers, rebalances, expired *prometheus.Desc
	members                        *prometheus.Desc
	lag, committed, hwm, owned     *prometheus.Desc
}

func newGroupCollector(src GroupSource) *groupCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "group", name), help, labels, nil)
	}
	stream := []string{"group", "topic", "range"}
	return &groupCollector{
		src:        src,
		consumers:  desc("consumers", "Registered consumers, all groups."),
		rebalances: desc("rebalances_total", "Group rebalances since start."),
		expired:    desc("members_expired_total", "Consumers dropped after member-timeout since start."),
		members:    desc("members", "Members of the group.", "group"),
		lag:        desc("lag_events", "Events the group has still to read in the sub-range: after its committed offset, or after the earliest event kept if later (0 while no offset is known).", stream...),
		committed:  desc("committed_offset", "The group's committed offset in the sub-range (absent while unknown).", stream...),
		hwm:        desc("high_watermark", "Next offset to be written in the sub-range.", stream...),
		owned:      desc("range_assigned", "1 when a member of the group reads the sub-range, else 0.", stream...),
	}
}

func (c *groupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.consumers, c.rebalances, c.expired, c.members, c.lag, c.committed, c.hwm, c.owned} {
		ch <- d
	}
}

func (c *groupCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(c.consumers, prometheus.GaugeValue, float64(s.Members))
	ch <- prometheus.MustNewConstMetric(c.rebalances, prometheus.CounterValue, float64(s.Rebalances))
	ch <- prometheus.MustNewConstMetric(c.expired, prometheus.CounterValue, float64(s.Expired))
	type key struct {
		topic string
		rng   uint32
	}
	for _, g := range s.Groups {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(len(g.Members)), g.Group)
		seen := make(map[key]bool, len(g.Streams))
		for _, st := range g.Streams {
			if st.HighWatermark == 0 {
				// The sub-range never held an event: nothing to read, no
				// lag. Without this, one registration of topics that do
				// not exist, in a group name of the client's choice,
				// would add four series per sub-range, kept for as long
				// as the group's offsets (--group-offset-retention).
				continue
			}
			// One ring generation at a time on a broker: (topic, range)
			// names a stream. Should two generations ever coexist, the
			// first in the snapshot's order wins rather than failing the
			// scrape with duplicate series.
			k := key{st.Stream.Topic, st.Stream.RangeIndex}
			if seen[k] {
				continue
			}
			seen[k] = true
			labels := []string{g.Group, st.Stream.Topic, strconv.FormatUint(uint64(st.Stream.RangeIndex), 10)}
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(st.Lag), labels...)
			ch <- prometheus.MustNewConstMetric(c.hwm, prometheus.GaugeValue, float64(st.HighWatermark), labels...)
			if st.Committed >= 0 {
				ch <- prometheus.MustNewConstMetric(c.committed, prometheus.GaugeValue, float64(st.Committed), labels...)
			}
			owned := 0.0
			if st.Owner != "" {
				owned = 1
			}
			ch <- prometheus.MustNewConstMetric(c.owned, prometheus.GaugeValue, owned, labels...)
		}
	}
}
