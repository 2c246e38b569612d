package vendorsim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"slices"
)

// baseJPEG is a small real JPEG (a gradient) that every simulated image
// starts from.
func baseJPEG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 96, 128))
	for y := 0; y < 128; y++ {
		for x := 0; x < 96; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 2), uint8(y * 2), uint8(128 + x - y/2), 255})
		}
	}
	var b bytes.Buffer
	_ = jpeg.Encode(&b, img, &jpeg.Options{Quality: 80})
	return b.Bytes()
}

// makeJPEG returns a valid JPEG of about size bytes whose bytes depend on
// seed: the base image with COM (comment) segments of seeded filler spliced
// after SOI. Decoders skip COM segments, so the image stays decodable.
func makeJPEG(base []byte, seed string, size int) []byte {
	out := make([]byte, 0, max(size, len(base))+8)
	out = append(out, base[:2]...) // SOI
	need := size - len(base)
	rng := rand.NewChaCha8(sha256.Sum256([]byte(seed))) // fills in bulk: PCG byte by byte cost more than the pipeline's work on the image
	first := true
	for need > 4 || first {
		n := min(max(need-4, 0), 65533)
		if first {
			n = max(n, 32) // every image carries its seed's bytes, however small
			first = false
		}
		out = append(out, 0xFF, 0xFE, byte((n+2)>>8), byte(n+2))
		l := len(out)
		out = slices.Grow(out, n)[:l+n]
		_, _ = rng.Read(out[l:])
		need -= n + 4
	}
	return append(out, base[2:]...)
}

// mp4Header is an ISO BMFF ftyp box followed by an mdat box header for a
// payload of n bytes.
func mp4Header(n int64) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 0, 24})
	b.WriteString("ftypisom")
	b.Write([]byte{0, 0, 2, 0})
	b.WriteString("isommp42")
	b.Write([]byte{0, 0, 0, 1})
	b.WriteString("mdat")
	_ = binary.Write(&b, binary.BigEndian, uint64(n+16))
	return b.Bytes()
}

// MP4Size is the total size of a simulated video with an n-byte payload.
func MP4Size(n int64) int64 { return int64(len(mp4Header(0))) + n }

// writeMP4 streams a deterministic MP4 of payload n bytes to w without
// holding it in memory.
func writeMP4(w io.Writer, seed string, n int64) error {
	if _, err := w.Write(mp4Header(n)); err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(seed))
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])))
	buf := make([]byte, 64<<10)
	for n > 0 {
		k := min(int64(len(buf)), n)
		for i := int64(0); i < k; i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], rng.Uint64())
		}
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
