// Command archiver benchmarks the archiver against a real MinIO process on
// loopback: images and megabytes stored per second while archiving Megvii
// answers (three 100 KB images each), next to a plain PutObject loop of the
// same bytes to the same store at the same concurrency measured in the same
// run; and the process's peak memory while it archives a 200 MB video
// streamed from a link. It prints a table and writes JSON.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devs3"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

func main() {
	n := flag.Int("verifications", 300, "Megvii answers (three images each) per throughput run")
	videoMB := flag.Int("video-mb", 200, "size of the streamed video, in MB")
	workers := flag.Int("workers", 8, "concurrent verifications (and concurrent PutObject calls in the baseline)")
	out := flag.String("out", "bin/bench-archiver.json", "where to write the JSON figures")
	flag.Parse()
	if err := run(*n, *videoMB, *workers, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench archiver:", err)
		os.Exit(1)
	}
}

// jpegLike is n bytes a sniffer takes for a JPEG: a JPEG header and noise
// (incompressible, like a photograph).
func jpegLike(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F', 0})
	return b
}

// vmHWM is the process's peak resident memory so far, in bytes.
func vmHWM() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return -1
}

func run(n, videoMB, workers int, out string) error {
	srv, s3b, err := startStore()
	if err != nil {
		return err
	}
	defer func() { srv.Stop(); os.RemoveAll(srv.DataDir) }()
	// The video is served over plain http on loopback, which the media
	// policy refuses unless told otherwise (as development does).
	media := archiver.NewMediaClient(archiver.MediaPolicy{AllowHTTP: true, AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	cfg := archiver.DefaultConfig()
	cfg.Store, cfg.HTTP = s3b, media
	a, err := archiver.New(cfg)
	if err != nil {
		return err
	}
	report := map[string]any{}
	fmt.Printf("archiver benchmark (MinIO process on loopback; 2 cores shared by MinIO and the archiver)\n")
	// Peak memory first, while the process has done nothing else.
	if report["video"], err = benchVideo(a, int64(videoMB)<<20); err != nil {
		return err
	}
	b := throughput{n: n, workers: workers, store: s3b, archiver: a, rand: rand.New(rand.NewPCG(1, 2))}
	if err := b.run(report); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(report, "", "  ")
	return os.WriteFile(out, js, 0o644)
}

// startStore starts MinIO in a temporary directory with the bucket "bench".
func startStore() (*devs3.Server, *objstore.S3, error) {
	wd, _ := os.Getwd()
	bin, err := devs3.Binary(wd)
	if err != nil {
		return nil, nil, err
	}
	srv, err := devs3.Start(bin, os.TempDir()+"/faceharvest-bench-minio-"+strconv.Itoa(os.Getpid()), "faceharvest", "faceharvest-bench-password")
	if err != nil {
		return nil, nil, err
	}
	s3b, err := objstore.NewS3(objstore.S3Config{Endpoint: srv.Endpoint, Bucket: "bench", PathStyle: true, PartSize: 8 << 20,
		AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password)})
	if err == nil {
		err = s3b.EnsureBucket(context.Background())
	}
	if err != nil {
		srv.Stop()
		os.RemoveAll(srv.DataDir)
		return nil, nil, err
	}
	return srv, s3b, nil
}

// videoServer serves a video of size bytes, every 1 MiB chunk different
// from the last.
func videoServer(size int64) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		chunk := make([]byte, 1<<20)
		copy(chunk, []byte{0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm'})
		for sent := int64(0); sent < size; sent += int64(len(chunk)) {
			if _, err := w.Write(chunk[:min(int64(len(chunk)), size-sent)]); err != nil {
				return
			}
			chunk[100] = byte(sent >> 20) // every chunk differs from the last
			if sent == 0 {
				copy(chunk, make([]byte, 12))
			}
		}
	}))
}

// benchVideo archives a Baidu answer whose video of size bytes is streamed
// from a link, and reports the time and the process's peak memory.
func benchVideo(a *archiver.Archiver, size int64) (map[string]any, error) {
	vsrv := videoServer(size)
	defer vsrv.Close()
	runtime.GC()
	before := vmHWM()
	body, _ := json.Marshal(map[string]any{"success": true, "result": map[string]any{"processVideo": []string{vsrv.URL + "/v.mp4"}}})
	start := time.Now()
	p, err := a.ArchiveResponse(context.Background(), "video-1", contract.Response{Vendor: contract.Baidu, VerificationID: "video-1", Endpoint: "result/media/query",
		HTTPStatus: 200, FetchedAt: time.Now(), Deadline: time.Now().Add(time.Hour), Body: body})
	if err != nil {
		return nil, err
	}
	if len(p.Media) != 1 || p.Media[0].Status != contract.MediaStored || p.Media[0].Size != size {
		return nil, fmt.Errorf("video not stored: %+v", p.Media)
	}
	peak := vmHWM()
	vs := time.Since(start).Seconds()
	fmt.Printf("%d MB video streamed link -> spool -> multipart: %.1f s, peak RSS of the whole process %.1f MB (before: %.1f MB; goal < 64 MB)\n",
		size>>20, vs, float64(peak)/1e6, float64(before)/1e6)
	return map[string]any{"bytes": size, "seconds": vs, "peak_rss_bytes": peak, "rss_before_bytes": before}, nil
}

// verif is one Megvii answer of the throughput runs: three 100 KB images
// inline.
type verif struct {
	id   string
	imgs [3][]byte
	body []byte
}

// throughput compares the archiver with a plain PutObject loop of the same
// bytes to the same store at the same concurrency.
type throughput struct {
	n, workers int
	store      *objstore.S3
	archiver   *archiver.Archiver
	rand       *rand.Rand
}

type row struct {
	ImagesPerSecond float64 `json:"images_per_second"`
	MBPerSecond     float64 `json:"mb_per_second"`
}

// mk makes n answers with ids prefix-0 …
func (b throughput) mk(prefix string) []verif {
	vs := make([]verif, b.n)
	for i := range vs {
		v := verif{id: fmt.Sprintf("%s-%d", prefix, i)}
		im := map[string]string{}
		for j, name := range []string{"image_best", "image_idcard_front", "image_idcard_back"} {
			v.imgs[j] = jpegLike(b.rand, 100<<10)
			im[name] = "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(v.imgs[j])
		}
		v.body, _ = json.Marshal(map[string]any{"status": "OK", "biz_info": map[string]any{"biz_id": v.id}, "images": im})
		vs[i] = v
	}
	return vs
}

// parallel runs fn on every answer, b.workers at a time, and returns the
// seconds it took and an error of one of them.
func (b throughput) parallel(vs []verif, fn func(v verif) error) (float64, error) {
	ch := make(chan verif)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	start := time.Now()
	for range b.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range ch {
				if err := fn(v); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
				}
			}
		}()
	}
	for _, v := range vs {
		ch <- v
	}
	close(ch)
	wg.Wait()
	return time.Since(start).Seconds(), first
}

// plain stores an answer's images with one PutObject each.
func (b throughput) plain(v verif) error {
	for j, img := range v.imgs {
		if err := b.store.Put(context.Background(), fmt.Sprintf("plain/%s/%d.jpg", v.id, j), bytes.NewReader(img), int64(len(img)), "image/jpeg", nil); err != nil {
			return err
		}
	}
	return nil
}

// archive archives an answer and checks that its three images are stored.
func (b throughput) archive(v verif) error {
	p, err := b.archiver.ArchiveResponse(context.Background(), contract.ResponseID(contract.Megvii, v.id, "get_result", 0), contract.Response{Vendor: contract.Megvii, VerificationID: v.id,
		Endpoint: "get_result", HTTPStatus: 200, FetchedAt: time.Now(), Deadline: time.Now().Add(time.Hour), Body: v.body})
	if err == nil && (len(p.Media) != 3 || p.Media[0].Status != contract.MediaStored) {
		err = fmt.Errorf("%s: media %+v", v.id, p.Media)
	}
	return err
}

// run warms both up, then measures three rounds into report.
func (b throughput) run(report map[string]any) error {
	// A warm-up of both, not counted: the store's first writes are slower.
	if _, err := b.parallel(b.mk("warm-plain")[:b.n/3], b.plain); err != nil {
		return err
	}
	if _, err := b.parallel(b.mk("warm-arch")[:b.n/3], b.archive); err != nil {
		return err
	}
	var ratios []float64
	for round := 1; round <= 3; round++ {
		ratio, err := b.round(round, report)
		if err != nil {
			return err
		}
		ratios = append(ratios, ratio)
	}
	sort.Float64s(ratios)
	report["median_ratio"] = ratios[len(ratios)/2]
	fmt.Printf("median ratio %.2f over %d rounds; both write three objects per answer, the archiver with conditional writes after decoding, checking and hashing every image\n", ratios[len(ratios)/2], len(ratios))
	return nil
}

// round measures one round, alternating which goes first so that neither
// always meets a fuller store, and returns the archiver's ratio to plain.
func (b throughput) round(round int, report map[string]any) (float64, error) {
	base, arch := b.mk(fmt.Sprintf("plain%d", round)), b.mk(fmt.Sprintf("arch%d", round))
	var bs, as float64
	var err error
	for k := range 2 {
		if (k+round)%2 == 0 {
			bs, err = b.parallel(base, b.plain)
		} else {
			as, err = b.parallel(arch, b.archive)
		}
		if err != nil {
			return 0, err
		}
	}
	mb := float64(3*b.n*(100<<10)) / 1e6
	p, x := row{float64(3*b.n) / bs, mb / bs}, row{float64(3*b.n) / as, mb / as}
	ratio := x.ImagesPerSecond / p.ImagesPerSecond
	report[fmt.Sprintf("round%d", round)] = map[string]any{"plain_put": p, "archiver": x, "ratio": ratio}
	fmt.Printf("round %d: plain PutObject %6.0f images/s %6.1f MB/s | archiver %6.0f images/s %6.1f MB/s | ratio %.2f (goal >= 0.8)\n",
		round, p.ImagesPerSecond, p.MBPerSecond, x.ImagesPerSecond, x.MBPerSecond, ratio)
	return ratio, nil
}
