"""Shared runtime for the mp3mesh services: settings, logging, gRPC bootstrap, AMQP, GridFS."""
