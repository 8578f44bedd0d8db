"""Seed SSM Parameter Store (moto_server) with SecureString parameters.

usage: ssm_put.py NAME=VALUE|NAME=@FILE ...   (endpoint from AWS_ENDPOINT_URL_SSM)
Values given as @FILE are read from the file so they never appear in a process listing.
"""
import sys

import boto3


def main(args):
    ssm = boto3.client("ssm")
    for arg in args:
        name, _, value = arg.partition("=")
        if value.startswith("@"):
            with open(value[1:]) as f:
                value = f.read().strip()
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
