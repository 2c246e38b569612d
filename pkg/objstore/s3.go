package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/faceharvest/faceharvest/pkg/config"
)

// S3Config configures an S3 bucket.
type S3Config struct {
	Endpoint  string // e.g. http://127.0.0.1:9000; "" for AWS
	Bucket    string
	Region    string // us-east-1 when empty
	AccessKey config.Secret
	SecretKey config.Secret
	// PathStyle addresses the bucket in the path (MinIO and most
	// S3-compatible stores) rather than the host name.
	PathStyle bool
	// SSE asks for server-side encryption of every object written: "" (the
	// bucket's default encryption applies), "AES256" or "aws:kms".
	SSE string
	// SSEKMSKeyID names the KMS key (id, alias or ARN) for SSE "aws:kms";
	// empty: the store's default KMS key.
	SSEKMSKeyID string
	// ObjectLockMode and ObjectLockDays set a retention on every object
	// written (WORM): GOVERNANCE or COMPLIANCE until ObjectLockDays days
	// after the write. The bucket must have Object Lock enabled. Empty and
	// 0: no retention of our own (a bucket default retention still applies).
	ObjectLockMode string
	ObjectLockDays int
	// Now is the clock retention periods start from (time.Now).
	Now func() time.Time
	// PartSize is the multipart part size for streams of unknown or large
	// size (8 MiB); smaller known-size bodies go in one PutObject.
	PartSize   int64
	HTTPClient *http.Client
}

// S3 is a Bucket in an S3-compatible store.
type S3 struct {
	cfg    S3Config
	client *s3.Client
}

// NewS3 returns a bucket client. Credentials are the static keys when given,
// otherwise the AWS SDK's default chain: environment, shared config and
// credentials files with their profiles, web identity (IRSA, EKS Pod
// Identity), container and instance roles. When the chain finds none, every
// request fails with a credentials error before anything is sent: nothing
// goes out unsigned. Checksums are sent only when the API requires them:
// some S3-compatible stores reject the SDK's default CRC32.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("no bucket given")
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = 8 << 20
	}
	switch {
	case cfg.ObjectLockMode != "" && cfg.ObjectLockMode != string(types.ObjectLockModeGovernance) && cfg.ObjectLockMode != string(types.ObjectLockModeCompliance):
		return nil, fmt.Errorf("object lock mode %q: want GOVERNANCE or COMPLIANCE", cfg.ObjectLockMode)
	case cfg.ObjectLockMode != "" && cfg.ObjectLockDays <= 0:
		return nil, errors.New("an object lock mode needs a positive number of days")
	case cfg.ObjectLockMode == "" && cfg.ObjectLockDays != 0:
		return nil, errors.New("object lock days need a mode")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// The SDK's own client when none is given: it takes AWS_CA_BUNDLE,
	// which a plain http.Client cannot.
	var httpClient awsconfig.HTTPClient = awshttp.NewBuildableClient().WithTimeout(10 * time.Minute)
	if cfg.HTTPClient != nil {
		httpClient = cfg.HTTPClient
	}
	load := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithDefaultRegion("us-east-1"),
		awsconfig.WithHTTPClient(httpClient),
		awsconfig.WithRetryMaxAttempts(3),
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.Region != "" {
		load = append(load, awsconfig.WithRegion(cfg.Region))
	}
	if !cfg.AccessKey.Empty() {
		load = append(load, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey.Reveal(), cfg.SecretKey.Reveal(), "")))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background(), load...)
	if err != nil {
		return nil, fmt.Errorf("object-store configuration: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.UsePathStyle = cfg.PathStyle
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &S3{cfg: cfg, client: client}, nil
}

// CheckCredentials resolves the credentials requests will be signed with
// (the chain may call STS or a metadata endpoint) and says clearly when
// there are none.
func (b *S3) CheckCredentials(ctx context.Context) error {
	p := b.client.Options().Credentials
	if p == nil {
		return errors.New("no object-store credentials: no provider configured")
	}
	if _, err := p.Retrieve(ctx); err != nil {
		return fmt.Errorf("no object-store credentials (static keys, AWS_* environment, shared profile, web identity, container or instance role): %w", err)
	}
	return nil
}

// Check says whether writes can succeed as configured: credentials exist
// and, when a retention is asked for, the bucket has Object Lock enabled
// (otherwise every write would be refused).
func (b *S3) Check(ctx context.Context) error {
	if err := b.CheckCredentials(ctx); err != nil {
		return err
	}
	if b.cfg.ObjectLockMode == "" {
		return nil
	}
	out, err := b.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &b.cfg.Bucket})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "ObjectLockConfigurationNotFoundError" {
		return fmt.Errorf("bucket %s has no Object Lock enabled: a retention (%s, %d days) cannot be set on its objects", b.cfg.Bucket, b.cfg.ObjectLockMode, b.cfg.ObjectLockDays)
	}
	if err != nil {
		return fmt.Errorf("bucket %s: Object Lock configuration: %w", b.cfg.Bucket, err)
	}
	if out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return fmt.Errorf("bucket %s has no Object Lock enabled: a retention (%s, %d days) cannot be set on its objects", b.cfg.Bucket, b.cfg.ObjectLockMode, b.cfg.ObjectLockDays)
	}
	return nil
}

// EnsureBucket creates the bucket when it does not exist (development),
// with Object Lock enabled when a retention is configured.
func (b *S3) EnsureBucket(ctx context.Context) error {
	_, err := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b.cfg.Bucket})
	if err == nil {
		return nil
	}
	in := &s3.CreateBucketInput{Bucket: &b.cfg.Bucket}
	if b.cfg.ObjectLockMode != "" {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	_, err = b.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", b.cfg.Bucket, err)
	}
	return nil
}

// Put implements Bucket: one PutObject for a known size up to PartSize (a
// bytes.Reader is seekable, so nothing is buffered twice), multipart
// streaming otherwise.
func (b *S3) Put(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string, opts ...PutOption) error {
	return b.put(ctx, key, body, size, contentType, meta, apply(opts), nil)
}

// Create implements Bucket with a conditional write (If-None-Match: *): one
// request, and the store itself refuses to replace an existing object.
func (b *S3) Create(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string, opts ...PutOption) error {
	err := b.put(ctx, key, body, size, contentType, meta, apply(opts), aws.String("*"))
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "412") {
		return ErrExists
	}
	return err
}

func (b *S3) put(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string, o putOptions, ifNoneMatch *string) error {
	if size >= 0 && size <= b.cfg.PartSize {
		rs, ok := body.(io.ReadSeeker)
		if !ok {
			data, err := io.ReadAll(io.LimitReader(body, size+1))
			if err != nil {
				return err
			}
			if int64(len(data)) != size {
				return errors.New("body length differs from the size given")
			}
			rs = bytes.NewReader(data)
		}
		var opts []func(*s3.Options)
		if o.sha256 != "" {
			opts = append(opts, presetPayloadHash(o.sha256))
		}
		in := b.putInput(key, rs, size, contentType, meta, ifNoneMatch)
		sum, err := contentMD5(rs, size)
		if err != nil {
			return err
		}
		in.ContentMD5 = &sum
		_, err = b.client.PutObject(ctx, in, opts...)
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "XAmzContentSHA256Mismatch" {
			return fmt.Errorf("%w: %s", ErrChecksum, key)
		}
		return err
	}
	return b.multipart(ctx, key, body, contentType, meta, ifNoneMatch)
}

// putInput is one PutObject with the settings every write carries.
func (b *S3) putInput(key string, body io.ReadSeeker, size int64, contentType string, meta map[string]string, ifNoneMatch *string) *s3.PutObjectInput {
	in := &s3.PutObjectInput{Bucket: &b.cfg.Bucket, Key: &key, Body: body, ContentLength: aws.Int64(size),
		ContentType: aws.String(contentType), Metadata: meta, IfNoneMatch: ifNoneMatch}
	if b.cfg.SSE != "" {
		in.ServerSideEncryption = types.ServerSideEncryption(b.cfg.SSE)
		if b.cfg.SSEKMSKeyID != "" {
			in.SSEKMSKeyId = aws.String(b.cfg.SSEKMSKeyID)
		}
	}
	if b.cfg.ObjectLockMode != "" {
		in.ObjectLockMode = types.ObjectLockMode(b.cfg.ObjectLockMode)
		in.ObjectLockRetainUntilDate = aws.Time(b.retainUntil())
	}
	return in
}

// contentMD5 is the Content-MD5 of the size bytes rs holds from its
// position on, which it is left at. Every upload carries one: S3 requires it (or an
// x-amz-checksum-*) on writes with Object Lock parameters and in buckets
// with a default retention, and the store refuses a body that differs
// (the SDK's own checksums are off: some S3-compatible stores reject them).
func contentMD5(rs io.ReadSeeker, size int64) (string, error) {
	pos, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	h := md5.New()
	if _, err := io.CopyN(h, rs, size); err != nil {
		if err == io.EOF {
			return "", errors.New("body length differs from the size given")
		}
		return "", err
	}
	if _, err := rs.Seek(pos, io.SeekStart); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// partMD5 is contentMD5 of a part in memory.
func partMD5(p []byte) *string {
	sum := md5.Sum(p)
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}

// retainUntil is the end of the retention of an object written now.
func (b *S3) retainUntil() time.Time {
	return b.cfg.Now().UTC().Add(time.Duration(b.cfg.ObjectLockDays) * 24 * time.Hour)
}

// createUploadInput starts a multipart upload with the settings putInput
// gives a single PutObject (encryption, Object Lock retention, content type,
// metadata): they are decided once, in putInput, so that a change to them
// cannot miss the multipart path. TestUploadInputsCarryTheSameSettings
// checks that every field the two inputs share is equal.
func (b *S3) createUploadInput(key, contentType string, meta map[string]string) *s3.CreateMultipartUploadInput {
	p := b.putInput(key, nil, 0, contentType, meta, nil)
	return &s3.CreateMultipartUploadInput{Bucket: p.Bucket, Key: p.Key, ContentType: p.ContentType, Metadata: p.Metadata,
		ServerSideEncryption: p.ServerSideEncryption, SSEKMSKeyId: p.SSEKMSKeyId,
		ObjectLockMode: p.ObjectLockMode, ObjectLockRetainUntilDate: p.ObjectLockRetainUntilDate}
}

// presetPayloadHash signs the request with a known payload hash instead
// of having the SDK hash the body: the store recomputes it and refuses a
// body that differs (XAmzContentSHA256Mismatch). Over TLS, where the SDK
// would send an unsigned payload, the known hash is signed as well.
func presetPayloadHash(sum string) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			if _, ok := st.Finalize.Get("ComputePayloadHash"); !ok {
				return nil
			}
			return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("faceharvest.PresetPayloadHash",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					return next.HandleFinalize(v4.SetPayloadHash(ctx, sum), in)
				}), "ComputePayloadHash", middleware.Before)
		})
	}
}

// multipart streams body in PartSize parts through one reused buffer, so a
// 200 MB video never sits in memory whole; a failed upload is aborted.
func (b *S3) multipart(ctx context.Context, key string, body io.Reader, contentType string, meta map[string]string, ifNoneMatch *string) (err error) {
	buf := make([]byte, b.cfg.PartSize)
	n, rerr := io.ReadFull(body, buf)
	if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
		// It fits in one part after all.
		in := b.putInput(key, bytes.NewReader(buf[:n]), int64(n), contentType, meta, ifNoneMatch)
		in.ContentMD5 = partMD5(buf[:n])
		_, err := b.client.PutObject(ctx, in)
		return err
	}
	if rerr != nil {
		return rerr
	}
	up, err := b.client.CreateMultipartUpload(ctx, b.createUploadInput(key, contentType, meta))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_, _ = b.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &b.cfg.Bucket, Key: &key, UploadId: up.UploadId})
		}
	}()
	var parts []types.CompletedPart
	for num := int32(1); ; num++ {
		out, err := b.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &b.cfg.Bucket, Key: &key, UploadId: up.UploadId, PartNumber: aws.Int32(num),
			Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)), ContentMD5: partMD5(buf[:n])})
		if err != nil {
			return err
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		n, rerr = io.ReadFull(body, buf)
		if rerr == io.EOF {
			break
		}
		if rerr != nil && rerr != io.ErrUnexpectedEOF {
			return rerr
		}
	}
	_, err = b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &b.cfg.Bucket, Key: &key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}, IfNoneMatch: ifNoneMatch})
	return err
}

func notFound(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NotFound", "NoSuchKey", "404":
			return true
		}
	}
	var nk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nk) || errors.As(err, &nf)
}

// Attributes implements Bucket.
func (b *S3) Attributes(ctx context.Context, key string) (Attrs, error) {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.cfg.Bucket, Key: &key})
	if err != nil {
		if notFound(err) {
			return Attrs{}, ErrNotFound
		}
		return Attrs{}, err
	}
	a := Attrs{Size: aws.ToInt64(out.ContentLength), ContentType: aws.ToString(out.ContentType), Metadata: out.Metadata}
	return a, nil
}

// Get implements Bucket.
func (b *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.cfg.Bucket, Key: &key})
	if err != nil {
		if notFound(err) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return out.Body, nil
}

// Iter implements Bucket with ListObjectsV2, one page (up to 1000 keys) at
// a time; StartAfter is the request's start-after, so the store lists
// nothing before it.
func (b *S3) Iter(ctx context.Context, prefix string, f func(key string) error, opts ...IterOption) error {
	in := &s3.ListObjectsV2Input{Bucket: &b.cfg.Bucket, Prefix: &prefix}
	if after := apply(opts).startAfter; after != "" {
		in.StartAfter = &after
	}
	p := s3.NewListObjectsV2Paginator(b.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			if err := f(aws.ToString(o.Key)); err != nil {
				return err
			}
		}
	}
	return nil
}

// PresignGet returns a URL that reads key without credentials of its own
// until expiry has passed (S3 allows at most 7 days). The URL is signed with
// the bucket's credentials and carries the access key id, never the secret;
// whoever holds it can read the object until it expires, so it is shown to
// the person who asked and never logged.
func (b *S3) PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if expiry <= 0 || expiry > 7*24*time.Hour {
		return "", fmt.Errorf("presign expiry %s: want more than 0 and at most 7 days", expiry)
	}
	req, err := s3.NewPresignClient(b.client).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(key)},
		s3.WithPresignExpires(expiry))
	if err != nil {
		return "", fmt.Errorf("presign %s: %w", key, err)
	}
	return req.URL, nil
}

// readyProbe is the key Ready asks for: it need not exist.
const readyProbe = "faceharvest-readyz-probe"

// Ready says whether the bucket answers with the credentials: a HEAD of a
// probe key, which need not exist (the readiness check of every binary that
// uses the store).
func (b *S3) Ready(ctx context.Context) error {
	if err := b.CheckCredentials(ctx); err != nil {
		return err
	}
	if _, err := b.Attributes(ctx, readyProbe); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// Start is what a binary that writes checks before it works: credentials,
// the bucket (created when create says so, for development), Object Lock
// when a retention is asked for (Check), and an answer from the bucket
// (Ready).
func (b *S3) Start(ctx context.Context, create bool) error {
	if err := b.CheckCredentials(ctx); err != nil {
		return err
	}
	if create {
		if err := b.EnsureBucket(ctx); err != nil {
			return err
		}
	}
	if err := b.Check(ctx); err != nil {
		return err
	}
	return b.Ready(ctx)
}
