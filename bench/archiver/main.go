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
	wd, _ := os.Getwd()
	bin, err := devs3.Binary(wd)
	if err != nil {
		return err
	}
	srv, err := devs3.Start(bin, os.TempDir()+"/faceharvest-bench-minio-"+strconv.Itoa(os.Getpid()), "faceharvest", "faceharvest-bench-password")
	if err != nil {
		return err
	}
	defer func() { srv.Stop(); os.RemoveAll(srv.DataDir) }()
	s3b, err := objstore.NewS3(objstore.S3Config{Endpoint: srv.Endpoint, Bucket: "bench", PathStyle: true, PartSize: 8 << 20,
		AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password)})
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := s3b.EnsureBucket(ctx); err != nil {
		return err
	}
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
	videoBytes := int64(videoMB) << 20
	vsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Content-Length", strconv.FormatInt(videoBytes, 10))
		chunk := make([]byte, 1<<20)
		copy(chunk, []byte{0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm'})
		for sent := int64(0); sent < videoBytes; sent += int64(len(chunk)) {
			if _, err := w.Write(chunk[:min(int64(len(chunk)), videoBytes-sent)]); err != nil {
				return
			}
			chunk[100] = byte(sent >> 20) // every chunk differs from the last
			if sent == 0 {
				copy(chunk, make([]byte, 12))
			}
		}
	}))
	defer vsrv.Close()
	runtime.GC()
	before := vmHWM()
	body, _ := json.Marshal(map[string]any{"success": true, "result": map[string]any{"processVideo": []string{vsrv.URL + "/v.mp4"}}})
	start := time.Now()
	p, err := a.ArchiveResponse(ctx, "video-1", contract.Response{Vendor: contract.Baidu, VerificationID: "video-1", Endpoint: "result/media/query",
		HTTPStatus: 200, FetchedAt: time.Now(), Deadline: time.Now().Add(time.Hour), Body: body})
	if err != nil {
		return err
	}
	if len(p.Media) != 1 || p.Media[0].Status != contract.MediaStored || p.Media[0].Size != videoBytes {
		return fmt.Errorf("video not stored: %+v", p.Media)
	}
	peak := vmHWM()
	vs := time.Since(start).Seconds()
	report["video"] = map[string]any{"bytes": videoBytes, "seconds": vs, "peak_rss_bytes": peak, "rss_before_bytes": before}
	fmt.Printf("%d MB video streamed link -> spool -> multipart: %.1f s, peak RSS of the whole process %.1f MB (before: %.1f MB; goal < 64 MB)\n",
		videoMB, vs, float64(peak)/1e6, float64(before)/1e6)

	// Throughput: the same bytes through the archiver and a plain PutObject loop.
	r := rand.New(rand.NewPCG(1, 2))
	type verif struct {
		id   string
		imgs [3][]byte
		body []byte
	}
	mk := func(prefix string) []verif {
		vs := make([]verif, n)
		for i := range vs {
			v := verif{id: fmt.Sprintf("%s-%d", prefix, i)}
			im := map[string]string{}
			for j, name := range []string{"image_best", "image_idcard_front", "image_idcard_back"} {
				v.imgs[j] = jpegLike(r, 100<<10)
				im[name] = "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(v.imgs[j])
			}
			v.body, _ = json.Marshal(map[string]any{"status": "OK", "biz_info": map[string]any{"biz_id": v.id}, "images": im})
			vs[i] = v
		}
		return vs
	}
	parallel := func(vs []verif, fn func(v verif) error) (float64, error) {
		ch := make(chan verif)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var first error
		start := time.Now()
		for range workers {
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
	type row struct {
		ImagesPerSecond float64 `json:"images_per_second"`
		MBPerSecond     float64 `json:"mb_per_second"`
	}
	plain := func(v verif) error {
		for j, img := range v.imgs {
			if err := s3b.Put(ctx, fmt.Sprintf("plain/%s/%d.jpg", v.id, j), bytes.NewReader(img), int64(len(img)), "image/jpeg", nil); err != nil {
				return err
			}
		}
		return nil
	}
	archive := func(v verif) error {
		p, err := a.ArchiveResponse(ctx, contract.ResponseID(contract.Megvii, v.id, "get_result", 0), contract.Response{Vendor: contract.Megvii, VerificationID: v.id,
			Endpoint: "get_result", HTTPStatus: 200, FetchedAt: time.Now(), Deadline: time.Now().Add(time.Hour), Body: v.body})
		if err == nil && (len(p.Media) != 3 || p.Media[0].Status != contract.MediaStored) {
			err = fmt.Errorf("%s: media %+v", v.id, p.Media)
		}
		return err
	}
	// A warm-up of both, not counted: the store's first writes are slower.
	if _, err := parallel(mk("warm-plain")[:n/3], plain); err != nil {
		return err
	}
	if _, err := parallel(mk("warm-arch")[:n/3], archive); err != nil {
		return err
	}
	var ratios []float64
	for round := 1; round <= 3; round++ {
		base, arch := mk(fmt.Sprintf("plain%d", round)), mk(fmt.Sprintf("arch%d", round))
		var bs, as float64
		var err error
		// Alternate which goes first, so neither always meets a fuller store.
		for k := range 2 {
			if (k+round)%2 == 0 {
				bs, err = parallel(base, plain)
			} else {
				as, err = parallel(arch, archive)
			}
			if err != nil {
				return err
			}
		}
		mb := float64(3*n*(100<<10)) / 1e6
		b, x := row{float64(3*n) / bs, mb / bs}, row{float64(3*n) / as, mb / as}
		ratios = append(ratios, x.ImagesPerSecond/b.ImagesPerSecond)
		report[fmt.Sprintf("round%d", round)] = map[string]any{"plain_put": b, "archiver": x, "ratio": x.ImagesPerSecond / b.ImagesPerSecond}
		fmt.Printf("round %d: plain PutObject %6.0f images/s %6.1f MB/s | archiver %6.0f images/s %6.1f MB/s | ratio %.2f (goal >= 0.8)\n",
			round, b.ImagesPerSecond, b.MBPerSecond, x.ImagesPerSecond, x.MBPerSecond, x.ImagesPerSecond/b.ImagesPerSecond)
	}
	sort.Float64s(ratios)
	report["median_ratio"] = ratios[len(ratios)/2]
	fmt.Printf("median ratio %.2f over %d rounds; both write three objects per answer, the archiver with conditional writes after decoding, checking and hashing every image\n", ratios[len(ratios)/2], len(ratios))
	b, _ := json.MarshalIndent(report, "", "  ")
	return os.WriteFile(out, b, 0o644)
}
