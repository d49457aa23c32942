"""The SmartID operator's local test bed: a real Kubernetes control plane built from upstream
Go modules, a kubelet stand-in, and a MongoDB wire-protocol server (FerretDB) for mongo pods.

Test bed and demo only; nothing in the operator imports it.
"""
