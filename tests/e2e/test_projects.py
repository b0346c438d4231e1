"""Projects (issue 15): the Vercel-style API of seed 004 at its paths and JSON shapes, projects
as a grouping on /v1 (create in a project, list by project, delete a project), the global names
of project functions on the other APIs, is_active on every API, and a project's routes by path
(/p/{project}/...) and by host ({project}.<project_domain>)."""

import http.client
import json
import unittest

import wisp_fixture
from auth_support import AuthServer

# The seed's own example: a handler that reads its context and logs.
SEED_FUNCTION = r"""
exports.handler = async (event, context) => {
  console.log('Function invoked with:', JSON.stringify(event));
  if (event.fail) throw new ReferenceError('undefined variable');
  return {
    functionName: context.functionName,
    projectId: context.projectId,
    invocationId: context.invocationId,
    timestamp: context.timestamp,
    awsRequestId: context.awsRequestId,
    arn: context.invokedFunctionArn,
    event,
  };
};
"""

# A route's function: answers with what it got.
ROUTE_FUNCTION = r"""
exports.handler = async (event) => ({
  statusCode: 200,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ which: process.env.WHICH, rawPath: event.rawPath,
                         pathParameters: event.pathParameters || null,
                         routeKey: event.requestContext.routeKey }),
});
"""

PYTHON_FUNCTION = """
def handler(event, context):
    return {"project": context.project_id, "name": context.function_name}
"""

DOMAIN = "apps.example.test"


class ProjectApiTest(wisp_fixture.WispTestCase):
    server_env = {"WISP_PROJECT_DOMAIN": DOMAIN}

    def project(self):
        serial = self.unique_name("p").rsplit("-", 1)[1]
        return f"p{serial}-{self._testMethodName[5:20]}".replace("_", "-").lower().rstrip("-")

    def create_in(self, project, name, code=SEED_FUNCTION, expect=201, **fields):
        body = {"function_name": name, "code": code, "file_path": f"api/{name}.js"}
        body.update(fields)
        r = self.wisp.request("POST", f"/api/functions/projects/{project}", body)
        self.assertEqual(r.status, expect, r)
        return r.json

    def test_create_invoke_and_metadata_in_the_seeds_shapes(self):
        project = self.project()
        created = self.create_in(project, "hello")
        self.assertEqual(created["success"], True)
        fn = created["function"]
        self.assertEqual(fn["function_name"], "hello")
        self.assertEqual(fn["project_id"], project)
        self.assertEqual(fn["file_path"], "api/hello.js")
        self.assertEqual(fn["route"], "/api/hello")
        self.assertTrue(fn["runtime"].startswith("node"), fn)
        self.assertIs(fn["is_active"], True)
        self.assertEqual(fn["invocation_count"], 0)
        for key in ("id", "created_at", "updated_at"):
            self.assertIn(key, fn)

        r = self.wisp.request("POST", f"/api/v1/functions/{project}/hello",
                              {"key": "value", "nested": {"data": "here"}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"success", "result", "duration", "logs"})
        self.assertIs(r.json["success"], True)
        self.assertIsInstance(r.json["duration"], int)
        result = r.json["result"]
        self.assertEqual(result["event"], {"key": "value", "nested": {"data": "here"}})
        self.assertEqual(result["functionName"], "hello")
        self.assertEqual(result["projectId"], project)
        self.assertEqual(result["invocationId"], result["awsRequestId"])
        self.assertRegex(result["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertTrue(result["arn"].endswith(f":function:{project}--hello"), result)
        self.assertTrue(any("Function invoked with:" in line for line in r.json["logs"]), r.json)

        r = self.wisp.request("GET", f"/api/v1/functions/{project}/hello")
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json["success"], True)
        meta = r.json["function"]
        self.assertEqual(meta["invocation_count"], 1)
        self.assertEqual(meta["file_path"], "api/hello.js")
        self.assertNotIn("code", meta)
        # The management GET shows the code too.
        r = self.wisp.request("GET", f"/api/functions/{project}/hello")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["function"]["code"], SEED_FUNCTION)

    def test_failure_answers_error_message_and_logs(self):
        project = self.project()
        self.create_in(project, "boom")
        r = self.wisp.request("POST", f"/api/v1/functions/{project}/boom", {"fail": True})
        self.assertEqual(r.status, 500, r)
        self.assertEqual(set(r.json), {"error", "message", "logs"})
        self.assertEqual(r.json["error"], "Function execution failed")
        self.assertEqual(r.json["message"], "ReferenceError: undefined variable")
        self.assertTrue(any("Function invoked with:" in line for line in r.json["logs"]), r.json)

    def test_unknown_function_is_the_seeds_not_found(self):
        project = self.project()
        for method, path in (("POST", f"/api/v1/functions/{project}/nope"),
                             ("GET", f"/api/v1/functions/{project}/nope"),
                             ("PATCH", f"/api/v1/functions/{project}/nope"),
                             ("GET", f"/api/functions/{project}/nope"),
                             ("DELETE", f"/api/functions/{project}/nope")):
            r = self.wisp.request(method, path, {"is_active": True} if method == "PATCH" else None)
            self.assertEqual(r.status, 404, (method, path, r))
            self.assertEqual(r.json, {"error": "Function not found"})

    def test_list_with_count_on_both_paths(self):
        project = self.project()
        self.create_in(project, "one")
        self.create_in(project, "two", runtime="python", code=PYTHON_FUNCTION,
                       file_path="api/two.py")
        self.create_in(self.project(), "other")
        for path in (f"/api/v1/projects/{project}/functions", f"/api/functions/projects/{project}"):
            r = self.wisp.request("GET", path)
            self.assertEqual(r.status, 200, r)
            self.assertIs(r.json["success"], True)
            self.assertEqual(r.json["count"], 2)
            self.assertEqual(sorted(f["function_name"] for f in r.json["functions"]),
                             ["one", "two"])
        r = self.wisp.request("GET", "/api/v1/projects/no-such-project/functions")
        self.assertEqual(r.json, {"success": True, "functions": [], "count": 0})
        # The Python context names the project too.
        r = self.wisp.request("POST", f"/api/v1/functions/{project}/two", {})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["result"], {"project": project, "name": f"{project}--two"})

    def test_disabled_function_runs_nothing_on_any_api(self):
        project = self.project()
        fid = self.create_in(project, "off")["function"]["id"]
        r = self.wisp.request("PATCH", f"/api/v1/functions/{project}/off", {"is_active": False})
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json["success"], True)
        self.assertIs(r.json["function"]["is_active"], False)
        # Only is_active on this path.
        r = self.wisp.request("PATCH", f"/api/v1/functions/{project}/off", {"memory_mb": 512})
        self.assertEqual(r.status, 400, r)

        r = self.wisp.request("POST", f"/api/v1/functions/{project}/off", {})
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.json["error"], "Function is disabled")
        self.assertIn("disabled", r.json["message"])
        self.assertEqual(self.wisp.invoke(fid, {}).status, 409)
        r = self.wisp.request("POST", f"/v1/functions/{fid}/invoke", {"event": {}, "async": True})
        self.assertEqual(r.status, 409, r)
        r = self.wisp.request("POST",
                              f"/2015-03-31/functions/{project}--off/invocations", {})
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.headers.get("x-amzn-errortype"), "ResourceConflictException")
        r = self.wisp.request("GET", f"/p/{project}/api/off")
        self.assertEqual(r.status, 409, r)
        self.assertIs(self.wisp.get(fid).json["item"]["is_active"], False)
        r = self.wisp.request("GET", f"/api/v1/functions/{project}/off")
        self.assertEqual(r.json["function"]["invocation_count"], 0)

        r = self.wisp.request("PATCH", f"/api/v1/functions/{project}/off", {"is_active": True})
        self.assertEqual(r.status, 200, r)
        r = self.wisp.request("POST", f"/api/v1/functions/{project}/off", {})
        self.assertEqual(r.status, 200, r)

    def test_management_update_and_delete(self):
        project = self.project()
        self.create_in(project, "svc")
        r = self.wisp.request("PATCH", f"/api/functions/{project}/svc",
                              {"code": "exports.handler = async () => 'v2';", "memory_mb": 128})
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json["success"], True)
        r = self.wisp.request("POST", f"/api/v1/functions/{project}/svc", {})
        self.assertEqual(r.json["result"], "v2")
        # The project is the path's: a body may not move the function.
        r = self.wisp.request("PATCH", f"/api/functions/{project}/svc", {"project": "elsewhere"})
        self.assertEqual(r.status, 400, r)
        r = self.wisp.request("DELETE", f"/api/functions/{project}/svc")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"success": True})
        r = self.wisp.request("GET", f"/api/v1/functions/{project}/svc")
        self.assertEqual(r.status, 404, r)

    def test_names_are_per_project_and_global_names_join_them(self):
        a, b = self.project(), self.project()
        self.create_in(a, "same")
        self.create_in(b, "same")
        r = self.create_in(a, "same", expect=409)
        self.assertEqual(r["error"], "Function already exists")
        # Other APIs see the global name.
        r = self.wisp.request("GET", f"/v1/functions?project={a}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([f["name"] for f in r.json["items"]], [f"{a}--same"])
        self.assertEqual(r.json["items"][0]["project"], a)
        self.assertEqual(r.json["items"][0]["name_in_project"], "same")
        r = self.wisp.request("GET", f"/2015-03-31/functions/{b}--same")
        self.assertEqual(r.status, 200, r)
        # "--" is the separator: not in a name outside projects, not in a project's name.
        r = self.wisp.request("POST", "/v1/functions",
                              {"name": "x--y", "runtime": "node", "code": SEED_FUNCTION})
        self.assertEqual(r.status, 400, r)
        self.assertIn("--", r.json["error"])
        r = self.wisp.request("POST", "/api/functions/projects/a--b",
                              {"function_name": "f", "code": SEED_FUNCTION, "runtime": "node"})
        self.assertEqual(r.status, 400, r)

    def test_v1_create_in_a_project_and_delete_the_project(self):
        project = self.project()
        fid = self.wisp.create(name="worker", project=project, runtime="node", code=SEED_FUNCTION)
        item = self.wisp.wait_state(fid)
        self.assertEqual(item["name"], f"{project}--worker")
        self.assertEqual(item["project"], project)
        self.create_in(project, "second")
        r = self.wisp.request("GET", "/v1/projects")
        self.assertIn({"project": project, "functions": 2}, r.json["items"])
        # A project's function may not move; a rename stays in the project, and sending its
        # global name back renames nothing.
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"project": "elsewhere"})
        self.assertEqual(r.status, 400, r)
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"name": "renamed"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["item"]["name"], f"{project}--renamed")
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"name": f"{project}--renamed"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["item"]["name"], f"{project}--renamed")
        r = self.wisp.request("DELETE", f"/v1/projects/{project}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json["deleted"]),
                         [f"{project}--renamed", f"{project}--second"])
        r = self.wisp.request("GET", f"/api/v1/projects/{project}/functions")
        self.assertEqual(r.json["count"], 0)
        self.assertEqual(self.wisp.request("DELETE", f"/v1/projects/{project}").status, 404)

    def test_routes_by_path_and_host_most_specific_first(self):
        project = self.project()
        for name, file_path in (("user", "api/users/[id].js"), ("me", "api/users/me.js"),
                                ("hello", "api/hello.js")):
            self.create_in(project, name, code=ROUTE_FUNCTION, file_path=file_path,
                           env={"WHICH": name})
        r = self.wisp.request("GET", f"/p/{project}/api/users/42?x=1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"which": "user", "rawPath": "/api/users/42",
                                  "pathParameters": {"id": "42"},
                                  "routeKey": "ANY /api/users/{id}"})
        r = self.wisp.request("GET", f"/p/{project}/api/users/me")
        self.assertEqual(r.json["which"], "me")
        self.assertIsNone(r.json["pathParameters"])
        r = self.wisp.request("POST", "/api/hello", {"a": 1},
                              headers={"Host": f"{project}.{DOMAIN}:8080"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["which"], "hello")
        self.assertEqual(r.json["rawPath"], "/api/hello")
        r = self.wisp.request("GET", f"/p/{project}/api/nothing")
        self.assertEqual(r.status, 404, r)
        # Another host is the API as usual.
        r = self.wisp.request("GET", "/health", headers={"Host": f"{DOMAIN}"})
        self.assertEqual(r.status, 200, r)


def call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class ProjectAuthTest(unittest.TestCase):
    """With auth required: the project API takes the platform's keys as every API does; a
    project route is public only when its function's URL is (AuthType NONE)."""

    @classmethod
    def setUpClass(cls):
        cls.server = AuthServer().start()
        cls.wisp = cls.server.wisp

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_keys_on_the_api_and_public_routes(self):
        for name, auth in (("open", "NONE"), ("closed", None)):
            r = self.wisp.request("POST", "/api/functions/projects/authp",
                                  {"function_name": name, "code": ROUTE_FUNCTION,
                                   "file_path": f"api/{name}.js", "env": {"WHICH": name}})
            self.assertEqual(r.status, 201, r)
            if auth:
                fid = r.json["function"]["id"]
                r = self.wisp.request("PUT", f"/v1/functions/{fid}/url", {"AuthType": auth})
                self.assertEqual(r.status, 200, r)
        key = {"Authorization": f"Bearer {AuthServer.CONFIG_KEY_SECRET}"}
        for method, path in (("POST", "/api/v1/functions/authp/open"),
                             ("GET", "/api/v1/functions/authp/open"),
                             ("GET", "/api/v1/projects/authp/functions"),
                             ("GET", "/api/functions/projects/authp"),
                             ("DELETE", "/api/functions/authp/open"),
                             ("GET", "/p/authp/api/closed"),
                             ("GET", "/p/authp/api/nothing")):
            self.assertEqual(call(self.wisp.port, method, path)[0], 401, (method, path))
        status, body = call(self.wisp.port, "GET", "/api/v1/functions/authp/open", headers=key)
        self.assertEqual(status, 200, body)
        status, body = call(self.wisp.port, "GET", "/p/authp/api/open")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["which"], "open")
        status, body = call(self.wisp.port, "GET", "/p/authp/api/closed", headers=key)
        self.assertEqual(status, 200, body)


if __name__ == "__main__":
    unittest.main()
