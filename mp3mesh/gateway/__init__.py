"""gateway: FileService over gRPC (streaming upload/download to GridFS, jobs)."""
