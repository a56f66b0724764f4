"""Deployment tooling (not in the Lambda package): the AWS stack around the Chalice app."""
