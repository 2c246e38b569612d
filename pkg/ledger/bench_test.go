package ledger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/devs3/devs3test"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// BenchmarkIntegrator is the integrator's cost per verification: for each
// leaf, the read of its index entry and the log's writes (the entry ->
// leaf map, its share of a batch's claim, bundles, tiles and checkpoint),
// in batches of 256, against memory and MinIO. Its baseline, measured in
// the same run on the same bucket, is what the archivers already spend per
// verification on the index: one write of the by-id entry, one at a time
// as each archiver worker writes its own. Reported per
// leaf (ns/leaf, leaves/s) and as the ratio to the baseline.
func BenchmarkIntegrator(b *testing.B) {
	buckets := map[string]func(b *testing.B) objstore.Bucket{
		"memory": func(*testing.B) objstore.Bucket { return objstore.NewMemory() },
		"minio": func(b *testing.B) objstore.Bucket {
			srv := devs3test.Start(b)
			s3, err := objstore.NewS3(objstore.S3Config{Endpoint: srv.Endpoint, Bucket: "evidence", PathStyle: true,
				AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password)})
			if err != nil {
				b.Fatal(err)
			}
			if err := s3.EnsureBucket(context.Background()); err != nil {
				b.Fatal(err)
			}
			return s3
		},
	}
	for _, name := range []string{"memory", "minio"} {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			bucket := buckets[name](b)
			s, v := testKeys(b, testOrigin)
			l, err := Open(ctx, Config{Bucket: bucket, Signer: s, Verifier: v})
			if err != nil {
				b.Fatal(err)
			}
			const batch = 256
			n := max(b.N, batch)
			leaves := make([]Leaf, n)
			for i := range leaves {
				leaves[i] = Leaf{Key: fmt.Sprintf("index/v1/by-id/megvii/bench-%08d.json", i), Data: fmt.Appendf(nil,
					`{"schema":"faceharvest.index.v1","vendor":"megvii","verification_id":"bench-%08d","record_id":"%032x","outcome":"harvested","decided_at":"2026-12-04T10:00:00Z",`+
						`"evidence":{"key":"megvii/2026/12/04/evidence/bench-%08d.json","sha256":"%064x","size":48211},"record":{"key":"megvii/2026/12/04/records/bench-%08d.json","sha256":"%064x","size":2210},`+
						`"media":[{"key":"megvii/2026/12/04/media/%064x.jpg","sha256":"%064x","size":100000}]}`, i, i, i, i, i, i+1, i+2, i+2)}
			}
			// Baseline: the archiver's one write of each by-id entry
			// (which the integrator then reads).
			start := time.Now()
			for _, lf := range leaves {
				if err := put(ctx, bucket, lf.Key, lf.Data, "application/json"); err != nil {
					b.Fatal(err)
				}
			}
			base := time.Since(start)
			b.ResetTimer()
			start = time.Now()
			for i := 0; i < n; i += batch {
				chunk := leaves[i:min(i+batch, n)]
				if err := parallel(len(chunk), storeWorkers, func(i int) error { // as the integrator reads them
					_, err := getLimited(ctx, bucket, chunk[i].Key, maxEntry)
					return err
				}); err != nil {
					b.Fatal(err)
				}
				if got, err := l.Append(ctx, chunk); err != nil || got != len(chunk) {
					b.Fatalf("appended %d of %d: %v", got, len(chunk), err)
				}
			}
			took := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(took.Nanoseconds())/float64(n), "ns/leaf")
			b.ReportMetric(float64(n)/took.Seconds(), "leaves/s")
			b.ReportMetric(float64(base.Nanoseconds())/float64(n), "baseline-ns/leaf")
			b.ReportMetric(took.Seconds()/base.Seconds(), "x-baseline")
		})
	}
}
