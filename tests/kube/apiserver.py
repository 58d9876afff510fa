#!/usr/bin/env python3
"""A fake kube-apiserver that real kubectl accepts, for the gateway's tests.

No kube-apiserver can be installed on the test machines, so this plays one,
closely enough for kubectl v1.30+ to be pointed at it unchanged:

* HTTPS only (kubectl sends --token only over TLS), bearer-token auth with a
  401 Status for anything else;
* /version, /healthz, /livez, /readyz, legacy discovery (/api, /apis,
  /api/v1, /apis/apps/v1); kubectl asks for aggregated discovery first and
  falls back when it gets plain application/json, which is all this serves;
* an in-memory store (namespaces, pods, configmaps, secrets, services,
  deployments) with get, list (List kinds, and meta.k8s.io Tables when the
  Accept header asks for them, as `kubectl get` does), create, update,
  merge/strategic patch, delete, deletecollection, field and label selectors,
  and watch streams that stay open and report ADDED/MODIFIED/DELETED;
* pods/log (follow=true streams lines over time, some with fake PII);
* pods/exec and pods/attach over WebSocket (v5.channel.k8s.io and
  v4.channel.k8s.io) running a tiny fake shell;
* pods/portforward over WebSocket (`SPDY/3.1+portforward.k8s.io`: a SPDY/3.1
  session tunnelled in binary messages, see spdy.py) and over a plain
  `Upgrade: SPDY/3.1` (kubectl's fallback), with fake services in every pod:
  HTTP with fake PII on 8080, echo on 5432, refused elsewhere;
* every request appended as one JSON line to a log file, so a test can assert
  what the upstream saw (and that a caller's token never reached it).

exec and attach over SPDY (kubectl before 1.30) are not implemented; those
requests get a 400 Status.

Usage:
  apiserver.py --cert server.pem --key server.key --token TOKEN \
      --log requests.jsonl [--port 0] [--host 127.0.0.1] [--trace-spdy]
  apiserver.py --make-cert DIR      # writes DIR/ca.pem, DIR/server.pem, DIR/server.key

With --port 0 the chosen port is printed as the first line on stdout.
"""

import argparse
import asyncio
import base64
import copy
import datetime as dt
import hashlib
import io
import json
import posixpath
import shlex
import ssl
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs

from aiohttp import WSMsgType, web

sys.path.insert(0, str(Path(__file__).resolve().parent))
import spdy  # noqa: E402  (tests/kube/spdy.py)

CORE_RESOURCES = {
    # name: (kind, namespaced, short names)
    "namespaces": ("Namespace", False, ["ns"]),
    "pods": ("Pod", True, ["po"]),
    "configmaps": ("ConfigMap", True, ["cm"]),
    "secrets": ("Secret", True, []),
    "services": ("Service", True, ["svc"]),
}
APPS_RESOURCES = {
    "deployments": ("Deployment", True, ["deploy"]),
}
GROUPS = {"": ("v1", CORE_RESOURCES), "apps": ("v1", APPS_RESOURCES)}
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
TABLE_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
PORTFORWARD_WS_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
FAKE_PII_LINES = [
    "INFO  GET /healthz 200",
    "INFO  login ok user=alice@example.com",
    "WARN  slow query customer ssn=123-45-6789 took 812ms",
    "INFO  card on file 4111 1111 1111 1111 for bob@example.org",
    "INFO  GET /api/orders 200",
]


def now_iso():
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(created):
    try:
        then = dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    except (TypeError, ValueError):
        return "<unknown>"
    secs = int((dt.datetime.now(dt.timezone.utc) - then).total_seconds())
    if secs < 120:
        return f"{max(secs, 0)}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def status(code, reason, message, details=None):
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return web.json_response(body, status=code)


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (also used for strategic merge patches,
    which agree with it on the maps kubectl label/annotate touch)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class Store:
    """Objects keyed by (group, resource, namespace, name), a global
    resourceVersion, and a bounded event history for watches."""

    def __init__(self):
        self.objects = {}
        self.rv = 100
        self.history = []  # (rv, group, resource, type, object)
        self.watchers = set()

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def put(self, group, resource, obj, event="ADDED"):
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_iso())
        meta["resourceVersion"] = self.next_rv()
        key = (group, resource, meta.get("namespace", ""), meta["name"])
        self.objects[key] = obj
        self.notify(group, resource, event, obj)
        return obj

    def delete(self, group, resource, namespace, name):
        obj = self.objects.pop((group, resource, namespace, name), None)
        if obj is not None:
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = self.next_rv()
            self.notify(group, resource, "DELETED", obj)
        return obj

    def get(self, group, resource, namespace, name):
        return self.objects.get((group, resource, namespace, name))

    def list(self, group, resource, namespace):
        return [
            obj
            for (g, r, ns, _), obj in sorted(self.objects.items())
            if g == group and r == resource and (not namespace or ns == namespace)
        ]

    def notify(self, group, resource, event, obj):
        rv = int(obj["metadata"]["resourceVersion"])
        self.history.append((rv, group, resource, event, copy.deepcopy(obj)))
        del self.history[:-1000]
        for queue in list(self.watchers):
            queue.put_nowait((rv, group, resource, event, copy.deepcopy(obj)))


def seed(store):
    for ns in ["default", "kube-system", "prod"]:
        store.put("", "namespaces", {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
        })
    for ns, name in [("prod", "web-1"), ("prod", "web-2"), ("default", "debug")]:
        store.put("", "pods", make_pod(ns, name))
    store.put("", "configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "customer-contacts", "namespace": "prod"},
        "data": {
            "owner": "jane.doe@example.com",
            "ssn": "123-45-6789",
            "notes": "escalate to jane.doe@example.com, backup SSN on file 987-65-4321",
        },
    })
    store.put("", "configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kube-root-ca.crt", "namespace": "prod"},
        "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n"},
    })
    store.put("", "secrets", {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db-credentials", "namespace": "prod"},
        "data": {"password": base64.b64encode(b"hunter2").decode()},
    })
    store.put("", "services", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                 "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
                 "selector": {"app": "web"}},
    })
    store.put("apps", "deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "generation": 1},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
        "status": {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2,
                   "availableReplicas": 2, "observedGeneration": 1},
    })


def make_pod(namespace, name, image="nginx:1.27", labels=None):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image}], "nodeName": "node-1"},
        "status": pod_status(["web"]),
    }


def pod_status(containers):
    return {
        "phase": "Running",
        "podIP": "10.244.0.7",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {"name": c, "ready": True, "restartCount": 0, "started": True,
             "state": {"running": {"startedAt": now_iso()}}}
            for c in containers
        ],
    }


# ---------------------------------------------------------------- tables

def table_columns(resource):
    name = {"name": "Name", "type": "string", "format": "name",
            "description": "Name must be unique within a namespace.", "priority": 0}
    age_col = {"name": "Age", "type": "string", "format": "",
               "description": "Time since creation.", "priority": 0}
    extra = {
        "pods": [("Ready", "string"), ("Status", "string"), ("Restarts", "string")],
        "namespaces": [("Status", "string")],
        "configmaps": [("Data", "integer")],
        "secrets": [("Type", "string"), ("Data", "integer")],
        "services": [("Type", "string"), ("Cluster-IP", "string"), ("Ports", "string")],
        "deployments": [("Ready", "string"), ("Up-to-date", "integer"), ("Available", "integer")],
    }.get(resource, [])
    cols = [name] + [{"name": n, "type": t, "format": "", "description": n, "priority": 0}
                     for n, t in extra]
    return cols + [age_col]


def table_cells(resource, obj):
    meta = obj["metadata"]
    st = obj.get("status", {})
    spec = obj.get("spec", {})
    if resource == "pods":
        cs = st.get("containerStatuses", [])
        ready = sum(1 for c in cs if c.get("ready"))
        extra = [f"{ready}/{len(spec.get('containers', []))}", st.get("phase", "Pending"),
                 str(sum(c.get("restartCount", 0) for c in cs))]
    elif resource == "namespaces":
        extra = [st.get("phase", "Active")]
    elif resource == "configmaps":
        extra = [len(obj.get("data", {}) or {})]
    elif resource == "secrets":
        extra = [obj.get("type", "Opaque"), len(obj.get("data", {}) or {})]
    elif resource == "services":
        ports = ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in spec.get("ports", []))
        extra = [spec.get("type", "ClusterIP"), spec.get("clusterIP", "None"), ports or "<none>"]
    elif resource == "deployments":
        extra = [f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
                 st.get("updatedReplicas", 0), st.get("availableReplicas", 0)]
    else:
        extra = []
    return [meta["name"]] + extra + [age(meta.get("creationTimestamp"))]


def as_table(resource, objects, resource_version, with_columns=True):
    rows = []
    for obj in objects:
        rows.append({
            "cells": table_cells(resource, obj),
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": obj["metadata"]},
        })
    table = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
             "metadata": {"resourceVersion": resource_version}, "rows": rows}
    table["columnDefinitions"] = table_columns(resource) if with_columns else []
    return table


def wants_table(request):
    return "as=Table" in request.headers.get("Accept", "")


def accepts_json(request):
    accept = request.headers.get("Accept", "")
    if not accept:
        return True
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        params = item.lower()
        if media in ("*/*", "application/*"):
            return True
        if media == "application/json" and "as=" not in params:
            return True
    return False


# ---------------------------------------------------------------- server

class FakeApiServer:
    def __init__(self, token, log_path, port_hint=0, spdy_trace=None):
        self.token = token
        self.spdy_trace = spdy_trace
        self.log_path = Path(log_path)
        self.store = Store()
        self.port = port_hint
        seed(self.store)

    # -- request log and auth --------------------------------------------
    def log(self, request, auth):
        header = request.headers.get("Authorization", "")
        presented = header[7:] if header.startswith("Bearer ") else ""
        entry = {
            "time": time.time(),
            "method": request.method,
            "path": request.path,
            "query": request.rel_url.raw_query_string,
            "auth": auth,
            "token_sha256": hashlib.sha256(presented.encode()).hexdigest()[:16] if presented else None,
            "accept": request.headers.get("Accept"),
            "content_type": request.headers.get("Content-Type"),
            "upgrade": request.headers.get("Upgrade"),
            "ws_protocols": request.headers.get("Sec-WebSocket-Protocol"),
            "user_agent": request.headers.get("User-Agent"),
        }
        with self.log_path.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    @web.middleware
    async def auth_middleware(self, request, handler):
        header = request.headers.get("Authorization")
        if header is None:
            auth = "missing"
        elif header == f"Bearer {self.token}":
            auth = "ok"
        else:
            auth = "mismatch"
        self.log(request, auth)
        if auth != "ok":
            return status(401, "Unauthorized", "Unauthorized")
        return await handler(request)

    # -- dispatch ----------------------------------------------------------
    async def handle(self, request):
        parts = [p for p in request.path.split("/") if p]
        if request.path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if request.path == "/version":
            return web.json_response({
                "major": "1", "minor": "32", "gitVersion": "v1.32.0-gatehouse-fake",
                "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                "goVersion": "go1.23.4", "compiler": "gc", "platform": "linux/amd64",
            })
        if parts[:2] == ["openapi", "v3"]:
            return self.openapi_v3(parts[2:])
        if parts and parts[0] in ("api", "apis") and not accepts_json(request):
            return status(406, "NotAcceptable", "only application/json is served here")
        if parts == ["api"]:
            return web.json_response({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}],
            })
        if parts == ["apis"]:
            return web.json_response({
                "kind": "APIGroupList", "apiVersion": "v1",
                "groups": [{
                    "name": "apps",
                    "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
                }],
            })
        if parts == ["api", "v1"]:
            return web.json_response(resource_list("v1", CORE_RESOURCES, subresources=True))
        if parts == ["apis", "apps", "v1"]:
            return web.json_response(resource_list("apps/v1", APPS_RESOURCES))
        if parts == ["apis", "apps"]:
            return web.json_response({
                "kind": "APIGroup", "apiVersion": "v1", "name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
            })
        if len(parts) >= 3 and parts[:2] == ["api", "v1"]:
            return await self.resource_request(request, "", "v1", parts[2:])
        if len(parts) >= 4 and parts[:3] == ["apis", "apps", "v1"]:
            return await self.resource_request(request, "apps", "v1", parts[3:])
        return status(404, "NotFound", "the server could not find the requested resource")

    def openapi_v3(self, rest):
        """Just enough OpenAPI v3 for kubectl to see that PATCH takes
        `fieldValidation`, so `kubectl apply/create -f` validates on the
        server (which accepts anything) instead of downloading schemas."""
        if not rest:
            return web.json_response({"paths": {
                "api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=FAKE1"},
                "apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=FAKE2"},
            }})
        gv = "/".join(rest)
        group = {"api/v1": "", "apis/apps/v1": "apps"}.get(gv)
        if group is None:
            return status(404, "NotFound", "the server could not find the requested resource")
        prefix = "/api/v1" if not group else "/apis/apps/v1"
        paths = {}
        for name, (kind, namespaced, _) in GROUPS[group][1].items():
            path = f"{prefix}/namespaces/{{namespace}}/{name}/{{name}}" if namespaced else f"{prefix}/{name}/{{name}}"
            paths[path] = {"patch": {
                "operationId": f"patch{kind}",
                "x-kubernetes-group-version-kind": {"group": group, "version": "v1", "kind": kind},
                "parameters": [
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "OK"}},
            }}
        return web.json_response({"openapi": "3.0.0",
                                  "info": {"title": "Kubernetes", "version": "v1.32.0"},
                                  "paths": paths})

    async def resource_request(self, request, group, version, rest):
        resources = GROUPS[group][1]
        watch_prefix = False
        if rest[0] == "watch":
            watch_prefix = True
            rest = rest[1:]
        namespace = ""
        if len(rest) >= 2 and rest[0] == "namespaces" and (len(rest) == 2 or rest[2] in ("status", "finalize")):
            resource, name, sub = "namespaces", rest[1], (rest[2] if len(rest) > 2 else "")
        else:
            if len(rest) >= 3 and rest[0] == "namespaces":
                namespace, rest = rest[1], rest[2:]
            resource = rest[0]
            name = rest[1] if len(rest) > 1 else ""
            sub = rest[2] if len(rest) > 2 else ""
        if resource not in resources:
            return status(404, "NotFound", "the server could not find the requested resource")
        kind, namespaced, _ = resources[resource]
        if namespaced is False and namespace:
            return status(404, "NotFound", "the server could not find the requested resource")
        if namespaced and namespace and not self.store.get("", "namespaces", "", namespace) \
                and request.method in ("POST",):
            return status(404, "NotFound", f'namespaces "{namespace}" not found',
                          {"name": namespace, "kind": "namespaces"})
        ctx = dict(group=group, version=version, resource=resource, kind=kind,
                   namespace=namespace, name=name)
        q = request.query
        if sub:
            if resource != "pods":
                return status(404, "NotFound", "the server could not find the requested resource")
            obj = self.store.get(group, resource, namespace, name)
            if obj is None:
                return not_found(resource, name)
            if sub == "log" and request.method == "GET":
                return await self.pod_log(request, obj)
            if sub in ("exec", "attach"):
                return await self.pod_exec(request, obj, sub)
            if sub == "portforward":
                return await self.pod_portforward(request, obj)
            if sub == "status" and request.method == "GET":
                return web.json_response(obj)
            return status(405, "MethodNotAllowed", f"{request.method} on pods/{sub} is not supported")

        method = request.method
        watching = watch_prefix or q.get("watch", "false").lower() not in ("false", "0")
        if method == "GET" and (watching and not name or watch_prefix):
            return await self.watch(request, ctx)
        if method == "GET" and name:
            obj = self.store.get(group, resource, namespace, name)
            if obj is None:
                return not_found(resource, name)
            if wants_table(request):
                return table_response(as_table(resource, [obj], obj["metadata"]["resourceVersion"]))
            return web.json_response(obj)
        if method == "GET":
            objs = [o for o in self.store.list(group, resource, namespace) if selected(o, q)]
            rv = str(self.store.rv)
            if wants_table(request):
                return table_response(as_table(resource, objs, rv))
            return web.json_response({
                "kind": f"{kind}List", "apiVersion": GROUPS[group][0] if not group else f"{group}/{version}",
                "metadata": {"resourceVersion": rv}, "items": objs,
            })
        if method == "POST" and not name:
            return await self.create(request, ctx)
        if method == "PUT" and name:
            return await self.update(request, ctx)
        if method == "PATCH" and name:
            return await self.patch(request, ctx)
        if method == "DELETE" and name:
            obj = self.store.delete(group, resource, namespace, name)
            if obj is None:
                return not_found(resource, name)
            if resource == "namespaces":
                for key in [k for k in self.store.objects if k[2] == name]:
                    self.store.delete(*key)
            return web.json_response(obj)
        if method == "DELETE":
            deleted = [self.store.delete(group, resource, namespace, o["metadata"]["name"])
                       for o in list(self.store.list(group, resource, namespace)) if selected(o, q)]
            return web.json_response({
                "kind": f"{kind}List", "apiVersion": "v1" if not group else f"{group}/{version}",
                "metadata": {"resourceVersion": str(self.store.rv)}, "items": deleted,
            })
        return status(405, "MethodNotAllowed", f"{method} is not supported here")

    # -- writes ------------------------------------------------------------
    async def read_body(self, request):
        try:
            return await request.json(loads=json.loads)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None

    async def create(self, request, ctx):
        obj = await self.read_body(request)
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
            return status(400, "BadRequest", "the body of the request was not a valid object")
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            return status(422, "Invalid", "metadata.name: Required value")
        if ctx["namespace"]:
            if meta.get("namespace", ctx["namespace"]) != ctx["namespace"]:
                return status(400, "BadRequest",
                              "the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = ctx["namespace"]
        if self.store.get(ctx["group"], ctx["resource"], ctx["namespace"], meta["name"]):
            return status(409, "AlreadyExists", f'{ctx["resource"]} "{meta["name"]}" already exists',
                          {"name": meta["name"], "kind": ctx["resource"]})
        for key in ("uid", "resourceVersion", "creationTimestamp"):
            meta.pop(key, None)
        if request.query.get("dryRun") == "All":
            return web.json_response(obj, status=201)
        if ctx["resource"] == "pods":
            containers = [c.get("name", "main") for c in obj.get("spec", {}).get("containers", [])]
            obj["status"] = pod_status(containers)
        if ctx["resource"] == "namespaces":
            obj["status"] = {"phase": "Active"}
        return web.json_response(self.store.put(ctx["group"], ctx["resource"], obj), status=201)

    async def update(self, request, ctx):
        obj = await self.read_body(request)
        current = self.store.get(ctx["group"], ctx["resource"], ctx["namespace"], ctx["name"])
        if current is None:
            return not_found(ctx["resource"], ctx["name"])
        if not isinstance(obj, dict):
            return status(400, "BadRequest", "the body of the request was not a valid object")
        sent_rv = obj.get("metadata", {}).get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            return status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again")
        obj.setdefault("metadata", {}).update(
            {k: current["metadata"][k] for k in ("uid", "creationTimestamp", "name")})
        if ctx["namespace"]:
            obj["metadata"]["namespace"] = ctx["namespace"]
        return web.json_response(self.store.put(ctx["group"], ctx["resource"], obj, "MODIFIED"))

    async def patch(self, request, ctx):
        current = self.store.get(ctx["group"], ctx["resource"], ctx["namespace"], ctx["name"])
        if current is None:
            return not_found(ctx["resource"], ctx["name"])
        ctype = request.headers.get("Content-Type", "").split(";")[0]
        if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            return status(415, "UnsupportedMediaType", f"the body of the request was in an unsupported content type {ctype}")
        body = await self.read_body(request)
        if not isinstance(body, dict):
            return status(400, "BadRequest", "invalid patch")
        patched = merge_patch(current, body)
        for key in ("uid", "creationTimestamp", "name", "namespace"):
            if key in current["metadata"]:
                patched["metadata"][key] = current["metadata"][key]
        return web.json_response(self.store.put(ctx["group"], ctx["resource"], patched, "MODIFIED"))

    # -- watch -------------------------------------------------------------
    async def watch(self, request, ctx):
        q = request.query
        group, resource, namespace = ctx["group"], ctx["resource"], ctx["namespace"]
        name = ctx["name"]
        table = wants_table(request)
        timeout = float(q.get("timeoutSeconds", "0") or 0) or None
        queue = asyncio.Queue()
        self.store.watchers.add(queue)

        def matches(g, r, obj):
            meta = obj["metadata"]
            return (g == group and r == resource
                    and (not namespace or meta.get("namespace", "") == namespace)
                    and (not name or meta["name"] == name)
                    and selected(obj, q))

        response = web.StreamResponse(headers={
            "Content-Type": "application/json", "Cache-Control": "no-cache, private"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        first = [True]

        async def send(event, obj):
            if table:
                payload = as_table(resource, [obj], obj["metadata"]["resourceVersion"], first[0])
                first[0] = False
            else:
                payload = obj
            line = json.dumps({"type": event, "object": payload}) + "\n"
            await response.write(line.encode())

        try:
            since = q.get("resourceVersion", "")
            if since in ("", "0"):
                for obj in self.store.list(group, resource, namespace):
                    if matches(group, resource, obj):
                        await send("ADDED", obj)
            else:
                for rv, g, r, event, obj in list(self.store.history):
                    if rv > int(since) and matches(g, r, obj):
                        await send(event, obj)
            deadline = time.monotonic() + timeout if timeout else None
            while True:
                wait = None if deadline is None else max(deadline - time.monotonic(), 0)
                if wait == 0:
                    break
                try:
                    _, g, r, event, obj = await asyncio.wait_for(queue.get(), wait)
                except asyncio.TimeoutError:
                    break
                if matches(g, r, obj):
                    await send(event, obj)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.watchers.discard(queue)
        return response

    # -- logs --------------------------------------------------------------
    async def pod_log(self, request, pod):
        q = request.query
        follow = q.get("follow", "false").lower() not in ("false", "0")
        container = q.get("container") or pod["spec"]["containers"][0]["name"]
        names = [c["name"] for c in pod["spec"]["containers"]]
        if container not in names:
            return status(400, "BadRequest",
                          f"container {container} is not valid for pod {pod['metadata']['name']}")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        stamp = q.get("timestamps", "false").lower() not in ("false", "0")
        try:
            i = 0
            while True:
                line = FAKE_PII_LINES[i % len(FAKE_PII_LINES)]
                if stamp:
                    line = f"{now_iso()} {line}"
                await response.write(f"{line} seq={i}\n".encode())
                i += 1
                if i >= len(FAKE_PII_LINES):
                    if not follow:
                        break
                    await asyncio.sleep(0.3)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    # -- exec --------------------------------------------------------------
    async def pod_exec(self, request, pod, sub):
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return status(400, "BadRequest",
                          "this fake apiserver only serves exec over WebSocket (no SPDY)")
        q = parse_qs(request.query_string, keep_blank_values=True)

        def flag(key):
            return q.get(key, ["false"])[0].lower() not in ("false", "0")

        command = q.get("command", [])
        if sub == "exec" and not command:
            return status(400, "BadRequest", "you must specify at least one command for the container")
        container = q.get("container", [pod["spec"]["containers"][0]["name"]])[0]
        if container not in [c["name"] for c in pod["spec"]["containers"]]:
            return status(400, "BadRequest",
                          f"container {container} is not valid for pod {pod['metadata']['name']}")
        ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"),
                                   autoping=True, heartbeat=None)
        ready = ws.can_prepare(request)
        if not ready.ok or ready.protocol is None:
            return status(400, "BadRequest", "no supported channel protocol (want v5 or v4.channel.k8s.io)")
        await ws.prepare(request)
        shell = FakeShell(ws, ws.ws_protocol, pod, tty=flag("tty"), stdin=flag("stdin"))
        try:
            await shell.run(command if sub == "exec" else ["sh"])
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return ws

    # -- port-forward ------------------------------------------------------
    async def pod_portforward(self, request, pod):
        """kubectl 1.31+ opens a WebSocket with the subprotocol
        `SPDY/3.1+portforward.k8s.io` and runs a SPDY/3.1 session inside its
        binary messages. When that upgrade fails (or with
        KUBECTL_PORT_FORWARD_WEBSOCKETS=false, or before 1.31) kubectl POSTs
        `Upgrade: SPDY/3.1` and speaks SPDY on the raw connection."""
        upgrade = request.headers.get("Upgrade", "").lower()
        if upgrade == "websocket":
            return await self.portforward_websocket(request, pod)
        if upgrade == "spdy/3.1":
            return await self.portforward_spdy(request, pod)
        return status(400, "BadRequest",
                      "port-forward needs a WebSocket or SPDY/3.1 upgrade")

    async def portforward_websocket(self, request, pod):
        ws = web.WebSocketResponse(protocols=(PORTFORWARD_WS_PROTOCOL,), autoping=True,
                                   heartbeat=None, max_msg_size=0)
        ready = ws.can_prepare(request)
        if not ready.ok or ready.protocol is None:
            return status(400, "BadRequest", f"port-forward needs the subprotocol {PORTFORWARD_WS_PROTOCOL}")
        await ws.prepare(request)

        async def received():
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    yield msg.data
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
                    return

        await self.run_portforward(pod, received(), ws.send_bytes)
        return ws

    async def portforward_spdy(self, request, pod):
        # X-Stream-Protocol-Version may be repeated or comma-separated.
        offered = [v.strip() for h in request.headers.getall("X-Stream-Protocol-Version", [])
                   for v in h.split(",") if v.strip()]
        if offered and "portforward.k8s.io" not in offered:
            return status(403, "Forbidden",
                          f"unable to upgrade: unable to negotiate protocol: client supports "
                          f"{offered}, server supports [portforward.k8s.io]")
        # aiohttp only hands over the raw connection for WebSocket and TCP
        # upgrades; for SPDY the bytes after the request are taken the way
        # WebSocketResponse takes them, with a payload parser of our own,
        # set before the 101 goes out so no SPDY byte reaches the HTTP parser.
        raw = RawUpgrade()
        request.protocol.set_parser(raw)
        response = web.StreamResponse(status=101, headers={
            "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
            "X-Stream-Protocol-Version": "portforward.k8s.io"})
        await response.prepare(request)
        try:
            await self.run_portforward(pod, raw.chunks(), response.write)
        finally:
            request.protocol.force_close()
        return response

    async def run_portforward(self, pod, chunks, write):
        """Runs one SPDY session: `chunks` yields the client's bytes,
        `write(bytes)` sends ours."""
        forwarder = PortForwarder(pod)
        session = spdy.Session(write, forwarder.on_stream, trace=self.spdy_trace)
        forwarder.session = session
        try:
            async for data in chunks:
                await session.feed(data)
        except (spdy.ProtocolError, ConnectionError, asyncio.CancelledError) as e:
            if self.spdy_trace and isinstance(e, spdy.ProtocolError):
                self.spdy_trace(f"protocol error: {e}")
        finally:
            session.connection_lost()
            forwarder.stop()


class RawUpgrade:
    """The bytes of an upgraded (non-WebSocket) connection, as aiohttp's
    payload-parser interface delivers them."""

    def __init__(self):
        self.queue = asyncio.Queue()

    def feed_data(self, data):
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self):
        self.queue.put_nowait(None)

    async def chunks(self):
        while (data := await self.queue.get()) is not None:
            yield data


class PortForwarder:
    """The kubelet's side of portforward.k8s.io (v1) on one SPDY session.

    For each local connection kubectl opens two streams, with the headers
    `streamtype` (`error` or `data`), `port` and `requestid`. Once both
    streams of a requestid are there, the data stream is joined to the fake
    service on that port inside the pod. A failure is written as text on
    the error stream, which kubectl prints; both streams are then closed."""

    def __init__(self, pod):
        self.pod = pod
        self.session = None
        self.pending = {}  # requestid -> {"error": Stream, "data": Stream}
        self.tasks = set()

    def spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def on_stream(self, stream):
        kind = stream.header("streamtype")
        port = stream.header("port", "")
        if kind not in ("error", "data") or not port.isdigit() or not 0 < int(port) < 65536:
            self.spawn(self.session.rst(stream.id, spdy.REFUSED_STREAM))
            return
        key = (stream.header("requestid") or f"port-{port}", int(port))
        pair = self.pending.setdefault(key, {})
        if kind in pair:
            self.spawn(self.session.rst(stream.id, spdy.PROTOCOL_ERROR))
            return
        pair[kind] = stream
        if len(pair) == 2:
            del self.pending[key]
            self.spawn(self.forward(key[1], pair["data"], pair["error"]))

    async def forward(self, port, data, error):
        service = POD_SERVICES.get(port)
        try:
            if service is None:
                meta = self.pod["metadata"]
                await error.write(
                    f"error forwarding port {port} to pod {meta['name']}, uid {meta.get('uid')}: "
                    f"failed to connect to localhost:{port} inside the pod: connection refused".encode())
            else:
                await service(self.pod, data)
        except ConnectionResetError:
            pass
        finally:
            for stream in (data, error):
                try:
                    await stream.close()
                except (ConnectionResetError, ConnectionError):
                    pass

    def stop(self):
        for task in list(self.tasks):
            task.cancel()


async def web_service(pod, stream):
    """Port 8080: one plain HTTP/1.1 request, then the connection closes.
    `GET /` answers with a page that carries fake PII."""
    request = bytearray()
    while b"\r\n\r\n" not in request and len(request) < 65536:
        chunk = await stream.read()
        if not chunk:
            break
        request += chunk
    words = request.split(b"\r\n", 1)[0].decode(errors="replace").split()
    method, path = (words + ["", ""])[:2]
    if method in ("GET", "HEAD") and path == "/":
        code, body = "200 OK", (f"hello from {pod['metadata']['name']}\n"
                                "customer ssn 123-45-6789, contact jane.doe@example.com\n")
    elif method in ("GET", "HEAD"):
        code, body = "404 Not Found", "not found\n"
    else:
        code, body = "405 Method Not Allowed", "method not allowed\n"
    body_bytes = body.encode()
    head = (f"HTTP/1.1 {code}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body_bytes)}\r\nConnection: close\r\n\r\n").encode()
    await stream.write(head + (b"" if method == "HEAD" else body_bytes))


async def echo_service(pod, stream):
    """Port 5432: every byte goes back until the client half-closes."""
    while True:
        chunk = await stream.read()
        if not chunk:
            return
        await stream.write(chunk)


POD_SERVICES = {8080: web_service, 5432: echo_service}


def selected(obj, q):
    """Field selector (metadata.name / metadata.namespace, = == !=) and
    equality-based label selector (k=v, k==v, k!=v, k, !k)."""
    meta = obj["metadata"]
    for term in filter(None, q.get("fieldSelector", "").split(",")):
        negate = "!=" in term
        key, _, value = term.replace("!=", "=").replace("==", "=").partition("=")
        actual = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace", ""),
                  "status.phase": obj.get("status", {}).get("phase")}.get(key.strip())
        if (actual == value.strip()) == negate:
            return False
    labels = meta.get("labels", {}) or {}
    for term in filter(None, q.get("labelSelector", "").split(",")):
        term = term.strip()
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def not_found(resource, name):
    return status(404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource})


def table_response(table):
    return web.Response(text=json.dumps(table), headers={"Content-Type": TABLE_TYPE})


def resource_list(group_version, resources, subresources=False):
    out = []
    for name, (kind, namespaced, short) in resources.items():
        entry = {"name": name, "singularName": kind.lower(), "namespaced": namespaced,
                 "kind": kind, "verbs": ALL_VERBS}
        if short:
            entry["shortNames"] = short
        if name in ("pods", "services", "deployments"):
            entry["categories"] = ["all"]
        out.append(entry)
    if subresources:
        out += [
            {"name": "pods/exec", "singularName": "", "namespaced": True,
             "kind": "PodExecOptions", "verbs": ["create", "get"]},
            {"name": "pods/attach", "singularName": "", "namespaced": True,
             "kind": "PodAttachOptions", "verbs": ["create", "get"]},
            {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
            {"name": "pods/portforward", "singularName": "", "namespaced": True,
             "kind": "PodPortForwardOptions", "verbs": ["create", "get"]},
            {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod",
             "verbs": ["get", "patch", "update"]},
        ]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": out}


CUSTOMERS_CSV = ("name,email,ssn\nAlice,alice@example.com,123-45-6789\n"
                 "Bob,bob@example.org,987-65-4321\n")


class FakeShell:
    """A tiny shell behind the Kubernetes channel protocol: channel 0 stdin,
    1 stdout, 2 stderr, 3 status, 4 resize, 255 close (v5)."""

    def __init__(self, ws, protocol, pod, tty, stdin):
        self.ws = ws
        self.v5 = protocol == "v5.channel.k8s.io"
        self.pod = pod
        self.tty = tty
        self.stdin = stdin
        self.size = (24, 80)
        self.nl = "\r\n" if tty else "\n"

    async def send(self, channel, data):
        if isinstance(data, str):
            data = data.encode()
        await self.ws.send_bytes(bytes([channel]) + data)

    async def out(self, text):
        if text:
            await self.send(1, text.replace("\n", self.nl) if self.tty else text)

    async def err(self, text):
        if text:
            # A terminal merges stderr into stdout.
            await self.send(1 if self.tty else 2, text.replace("\n", self.nl) if self.tty else text)

    async def finish(self, code):
        if code == 0:
            body = {"metadata": {}, "status": "Success"}
        else:
            body = {"metadata": {}, "status": "Failure",
                    "message": f"command terminated with non-zero exit code: exit status {code}",
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        await self.send(3, json.dumps(body))
        await self.ws.close()

    def run_words(self, words):
        """Runs one command line; returns (stdout, stderr, exit code, exit?)."""
        if not words:
            return "", "", 0, False
        cmd, args = words[0], words[1:]
        name = self.pod["metadata"]["name"]
        if cmd in ("sh", "bash", "/bin/sh", "/bin/bash") and args[:1] == ["-c"] and len(args) >= 2:
            out, err, code = "", "", 0
            for line in args[1].replace("&&", ";").split(";"):
                o, e, code, done = self.run_words(shlex.split(line))
                out, err = out + o, err + e
                if done:
                    return out, err, code, True
            return out, err, code, False
        if cmd == "echo":
            return " ".join(args) + "\n", "", 0, False
        if cmd == "whoami":
            return "root\n", "", 0, False
        if cmd == "id":
            return "uid=0(root) gid=0(root) groups=0(root)\n", "", 0, False
        if cmd == "hostname":
            return name + "\n", "", 0, False
        if cmd == "pwd":
            return "/\n", "", 0, False
        if cmd == "true":
            return "", "", 0, False
        if cmd == "false":
            return "", "", 1, False
        if cmd == "ls":
            return "bin\ndata\netc\nusr\n", "", 0, False
        if cmd == "stty" and args == ["size"]:
            return f"{self.size[0]} {self.size[1]}\n", "", 0, False
        if cmd == "cat" and args == ["/data/customers.csv"]:
            return CUSTOMERS_CSV, "", 0, False
        if cmd == "tar" and args[:2] == ["cf", "-"]:
            # What `kubectl cp POD:PATH LOCAL` runs: a tar archive on stdout.
            rest, base = args[2:], ""
            if rest[:1] == ["-C"] and len(rest) >= 3:
                base, rest = rest[1], rest[2:]
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as archive:
                for name in rest:
                    full = posixpath.join(base, name) if base else name
                    if full != "/data/customers.csv":
                        return "", f"tar: {full}: Cannot stat: No such file or directory\n", 2, False
                    data = CUSTOMERS_CSV.encode()
                    info = tarfile.TarInfo(name=name.lstrip("/"))
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
            return buf.getvalue(), "", 0, False
        if cmd == "exit":
            code = int(args[0]) if args and args[0].isdigit() else 0
            return "", "", code, True
        return "", f"sh: {cmd}: not found\n", 127, False

    async def run(self, command):
        interactive = self.stdin and (command in (["sh"], ["bash"], ["/bin/sh"], ["/bin/bash"]))
        if not interactive:
            out, err, code, _ = self.run_words(command)
            await self.out(out)
            await self.err(err)
            if not self.stdin:
                await self.finish(code)
                return
        if interactive and self.tty:
            await self.out("$ ")
        line = bytearray()
        code = 0
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
                    break
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == 4:
                try:
                    size = json.loads(data)
                    self.size = (int(size["Height"]), int(size["Width"]))
                except (ValueError, KeyError, TypeError):
                    pass
                continue
            if channel == 255 and self.v5:
                if data[:1] == b"\x00":
                    break  # stdin closed
                continue
            if channel != 0:
                continue
            if not interactive:
                # Without a shell, stdin is just consumed (like `cat >/dev/null`).
                continue
            for byte in data:
                if self.tty and byte in (0x7F, 0x08):
                    if line:
                        line.pop()
                        await self.out("\b \b")
                    continue
                if self.tty and byte == 0x03:
                    line.clear()
                    await self.out("^C\n$ ")
                    continue
                if byte == 0x04 and not line:
                    await self.out("exit\n" if self.tty else "")
                    await self.finish(code)
                    return
                if byte in (0x0D, 0x0A):
                    if self.tty:
                        await self.out("\n")
                    try:
                        words = shlex.split(line.decode(errors="replace"))
                    except ValueError:
                        words = ["sh:", "syntax error"]
                    line.clear()
                    out, err, code, done = self.run_words(words)
                    await self.out(out)
                    await self.err(err)
                    if done:
                        await self.finish(code)
                        return
                    if self.tty:
                        await self.out("$ ")
                    continue
                line.append(byte)
                if self.tty:
                    await self.out(bytes([byte]).decode(errors="replace"))
        if not self.ws.closed:
            await self.finish(code)


def make_cert(directory):
    """Writes a throwaway CA and a server certificate for 127.0.0.1."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    run = lambda *args: subprocess.run(args, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "2",
        "-subj", "/CN=gatehouse-test-ca")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"), "-subj", "/CN=127.0.0.1")
    ext = d / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                   "extendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"),
        "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "server.pem"),
        "-days", "2", "-extfile", str(ext))


async def serve(args):
    trace = None
    if args.trace_spdy:
        trace = lambda line: print(f"spdy: {line}", file=sys.stderr, flush=True)  # noqa: E731
    server = FakeApiServer(args.token, args.log, args.port, spdy_trace=trace)
    app = web.Application(middlewares=[server.auth_middleware], client_max_size=4 << 20)
    app.router.add_route("*", "/{tail:.*}", server.handle)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    context.set_alpn_protocols(["http/1.1"])
    runner = web.AppRunner(app, access_log=None, handle_signals=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, ssl_context=context)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]
    print(server.port, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--make-cert", metavar="DIR", help="write ca.pem, server.pem, server.key and exit")
    parser.add_argument("--cert", help="server certificate chain (PEM)")
    parser.add_argument("--key", help="server private key (PEM)")
    parser.add_argument("--token", help="the only bearer token accepted")
    parser.add_argument("--log", help="append one JSON line per request here")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed first)")
    parser.add_argument("--trace-spdy", action="store_true",
                        help="print every port-forward SPDY frame on stderr")
    args = parser.parse_args()
    if args.make_cert:
        make_cert(args.make_cert)
        return
    for required in ("cert", "key", "token", "log"):
        if not getattr(args, required):
            parser.error(f"--{required} is required")
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
