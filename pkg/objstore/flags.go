package objstore

import (
	"errors"
	"fmt"

	"github.com/faceharvest/faceharvest/pkg/config"
)

// FlagsFor says which binary the object store's flags are for.
type FlagsFor struct {
	// Writes adds the flags of a binary that writes objects (the
	// archiver): encryption, WORM retention and the multipart part size.
	Writes bool
	// Bucket is the --s3-bucket help: what the binary does with it.
	Bucket string
	// Credentials ends the AWS_ACCESS_KEY_ID help: what the binary needs
	// the credentials for, or does without them.
	Credentials string
}

// S3Flags are the object store's flags (--s3-*) and credentials
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or their _FILE forms), the
// same in every binary that reads or writes the evidence store.
type S3Flags struct {
	cfg    S3Config
	writes bool
	create bool
}

// RegisterFlags adds the object store's flags and credentials to fs.
func RegisterFlags(fs *config.FlagSet, f FlagsFor) *S3Flags {
	s := &S3Flags{writes: f.Writes}
	c := &s.cfg
	fs.StringVar(&c.Endpoint, "s3-endpoint", "", "S3-compatible endpoint URL, e.g. http://127.0.0.1:9000; empty for AWS S3")
	fs.StringVar(&c.Bucket, "s3-bucket", "faceharvest-evidence", f.Bucket)
	fs.StringVar(&c.Region, "s3-region", "us-east-1", "bucket region")
	fs.BoolVar(&c.PathStyle, "s3-path-style", true, "address the bucket in the URL path (MinIO and most S3-compatible stores); false for virtual-hosted AWS style")
	if f.Writes {
		fs.StringVar(&c.SSE, "s3-sse", "", "server-side encryption asked for on every object written: AES256 (SSE-S3) or aws:kms (SSE-KMS); empty: none asked for, the bucket's default encryption applies (the alternative: set it on the bucket once). MinIO needs a KMS configured for either")
		fs.StringVar(&c.SSEKMSKeyID, "s3-sse-kms-key-id", "", "KMS key (id, alias/<name> or ARN) for --s3-sse=aws:kms; empty: the store's default KMS key")
		fs.StringVar(&c.ObjectLockMode, "s3-object-lock-mode", "", "WORM retention set on every object written: GOVERNANCE (users with s3:BypassGovernanceRetention may still delete) or COMPLIANCE (nobody can, the root account included, until it ends); needs --s3-object-lock-days and a bucket created with Object Lock enabled (checked at start). Every write carries Content-MD5, which Object Lock requires. Empty: none set (a bucket default retention still applies)")
		fs.IntVar(&c.ObjectLockDays, "s3-object-lock-days", 0, "days each object written is retained under --s3-object-lock-mode, counted from its write")
		fs.Int64Var(&c.PartSize, "s3-part-size", 8<<20, "multipart part size in bytes for large media (memory per upload in flight)")
		fs.BoolVar(&s.create, "s3-create-bucket", false, "create the bucket at start when it is missing (development)")
	}
	fs.Secret("AWS_ACCESS_KEY_ID", "object-store access key (or AWS_ACCESS_KEY_ID_FILE). Without static keys the AWS SDK's default chain is used: AWS_PROFILE with the shared config and credentials files (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE), web identity (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE: IRSA), container credentials (EKS Pod Identity, ECS), the instance role. "+f.Credentials)
	fs.Secret("AWS_SECRET_ACCESS_KEY", "object-store secret key (or AWS_SECRET_ACCESS_KEY_FILE)")
	return s
}

// CreateBucket says whether --s3-create-bucket was given (a binary that
// writes).
func (s *S3Flags) CreateBucket() bool { return s.create }

// Config reads the credentials and checks the flags: call it after the
// flag set was parsed.
func (s *S3Flags) Config(getenv func(string) string) (S3Config, error) {
	c := s.cfg
	var err error
	if c.AccessKey, err = config.LoadSecret(getenv, nil, "AWS_ACCESS_KEY_ID"); err != nil {
		return S3Config{}, err
	}
	if c.SecretKey, err = config.LoadSecret(getenv, nil, "AWS_SECRET_ACCESS_KEY"); err != nil {
		return S3Config{}, err
	}
	switch {
	case c.AccessKey.Empty() != c.SecretKey.Empty():
		return S3Config{}, errors.New("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
	case c.Bucket == "":
		return S3Config{}, errors.New("--s3-bucket is empty")
	case !s.writes:
		return c, nil
	case c.SSE != "" && c.SSE != "AES256" && c.SSE != "aws:kms":
		return S3Config{}, fmt.Errorf("--s3-sse %q: want AES256 or aws:kms (or empty)", c.SSE)
	case c.SSEKMSKeyID != "" && c.SSE != "aws:kms":
		return S3Config{}, errors.New("--s3-sse-kms-key-id needs --s3-sse=aws:kms")
	case c.ObjectLockMode != "" && c.ObjectLockMode != "GOVERNANCE" && c.ObjectLockMode != "COMPLIANCE":
		return S3Config{}, fmt.Errorf("--s3-object-lock-mode %q: want GOVERNANCE or COMPLIANCE (or empty)", c.ObjectLockMode)
	case c.ObjectLockDays < 0:
		return S3Config{}, fmt.Errorf("--s3-object-lock-days %d must be positive", c.ObjectLockDays)
	case c.ObjectLockMode != "" && c.ObjectLockDays == 0:
		return S3Config{}, fmt.Errorf("--s3-object-lock-mode %s needs --s3-object-lock-days", c.ObjectLockMode)
	case c.ObjectLockMode == "" && c.ObjectLockDays != 0:
		return S3Config{}, fmt.Errorf("--s3-object-lock-days %d needs --s3-object-lock-mode", c.ObjectLockDays)
	case c.PartSize < 5<<20:
		return S3Config{}, fmt.Errorf("--s3-part-size %d is below S3's 5 MiB minimum", c.PartSize)
	}
	return c, nil
}
