"""A deployed cluster run on this machine: each ECS service and RunTask of the deployed
templates started as a local process of the image's entrypoint, with its task definition's
command, environment and secrets, under its task role's credentials, against a local AWS
endpoint (moto, in this process) and a local PostgreSQL standing in for RDS.

The end-to-end test boots a cluster this way. What differs from ECS
is stated where it happens (entrypoint.py, ecs.py, rds.py)."""
