package vendorsim

import (
	"bytes"
	"image/jpeg"
	"net/http"
	"testing"
)

func TestMakeJPEG(t *testing.T) {
	base := baseJPEG()
	for _, size := range []int{0, 100, 5000, 100 << 10, 300 << 10} {
		b := makeJPEG(base, "seed", size)
		if _, err := jpeg.Decode(bytes.NewReader(b)); err != nil {
			t.Fatalf("size %d: not a JPEG: %v", size, err)
		}
		if http.DetectContentType(b) != "image/jpeg" {
			t.Fatalf("size %d: sniffed as %s", size, http.DetectContentType(b))
		}
		if size > len(base)+100 && (len(b) < size-4 || len(b) > size+4) {
			t.Fatalf("size %d: got %d bytes", size, len(b))
		}
	}
	if bytes.Equal(makeJPEG(base, "a", 4000), makeJPEG(base, "b", 4000)) {
		t.Fatal("different seeds, same bytes")
	}
	if !bytes.Equal(makeJPEG(base, "a", 4000), makeJPEG(base, "a", 4000)) {
		t.Fatal("same seed, different bytes")
	}
}

func TestWriteMP4(t *testing.T) {
	var a, b bytes.Buffer
	if err := writeMP4(&a, "v", 100003); err != nil {
		t.Fatal(err)
	}
	_ = writeMP4(&b, "v", 100003)
	if int64(a.Len()) != MP4Size(100003) || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("len %d", a.Len())
	}
	if ct := http.DetectContentType(a.Bytes()); ct != "video/mp4" {
		t.Fatalf("sniffed as %s", ct)
	}
}
