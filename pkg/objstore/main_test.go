package objstore

import (
	"os"
	"testing"
)

// No test may reach an instance-metadata endpoint: the SDK's default chain
// would otherwise try 169.254.169.254 when it finds no other credentials.
func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}
