package bus

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/segmentio/kafka-go"
)

// NewLagGauge registers faceharvest_<component>_consumer_lag_messages: how
// many messages each partition this member consumes is behind the end.
func NewLagGauge(reg prometheus.Registerer, component string) *prometheus.GaugeVec {
	return promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{Name: "faceharvest_" + component + "_consumer_lag_messages",
		Help: "Messages between this member's position and the end of each partition it consumes."}, []string{"partition"})
}

// TrackLag sets partition's lag from rd every interval until ctx ends, then
// removes the series (another member owns the partition now).
func TrackLag(ctx context.Context, rd *kafka.Reader, g *prometheus.GaugeVec, partition int, every time.Duration) {
	label := strconv.Itoa(partition)
	defer g.DeleteLabelValues(label)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if lag := rd.Lag(); lag >= 0 { // -1 until the first message
				g.WithLabelValues(label).Set(float64(lag))
			}
		}
	}
}
