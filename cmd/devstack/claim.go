package main

// kafkaDefaultMaxMessageBytes is Kafka's default message.max.bytes (1 MiB
// and the batch overhead): the stack runs with it, as a managed Kafka
// would, since large answers travel by reference to the store.
const kafkaDefaultMaxMessageBytes = "1048588"

// storeArgs are the object-store flags of the components that write the
// bucket (archiver, harvester): the stack's MinIO, the bucket created at
// start by whichever comes first.
func (s *stack) storeArgs() []string {
	return []string{"--s3-endpoint", s.minio.Endpoint, "--s3-bucket", bucket, "--s3-create-bucket"}
}
