import pytest
import yaml

pytestmark = pytest.mark.django_db


def test_schema_describes_every_builder_action(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        "/api/v1/claim/",
        "/api/v1/builds/{build_id}/heartbeat/",
        "/api/v1/builds/{build_id}/files/{filename}",
        "/api/v1/builds/{build_id}/log/",
        "/api/v1/builds/{build_id}/finish/",
        "/api/v1/builds/{build_id}/release/",
        "/api/v1/packages/",
    }
    claim = schema["paths"]["/api/v1/claim/"]["post"]
    assert set(claim["responses"]) >= {"200", "204", "400", "401", "403"}
    upload = schema["paths"]["/api/v1/builds/{build_id}/files/{filename}"]["put"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert {"201", "400", "409", "413"} <= set(upload["responses"])
    scheme = schema["components"]["securitySchemes"]["tokenAuth"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    assert claim["security"] == [{"tokenAuth": []}]


def test_schema_is_served_as_yaml_by_default(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert yaml.safe_load(response.content)["info"]["title"] == "piwheels builder API"


def test_schema_says_what_the_server_refuses(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    parts = schema["components"]["schemas"]
    assert parts["Claim"]["properties"]["abi"]["minLength"] == 1
    assert parts["File"]["properties"]["filename"]["minLength"] == 1
    assert parts["Finish"]["properties"]["duration"]["maximum"] == 30 * 24 * 3600
    assert parts["Finish"]["properties"]["duration"]["minimum"] == 0
    upload = schema["paths"]["/api/v1/builds/{build_id}/files/{filename}"]["put"]
    (sha,) = [p for p in upload["parameters"] if p["name"] == "X-Sha256"]
    assert sha["required"] and sha["schema"]["pattern"] == "^[0-9a-fA-F]{64}$"
    (build_id,) = [p for p in upload["parameters"] if p["name"] == "build_id"]
    assert build_id["schema"] == {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}
    log = schema["paths"]["/api/v1/builds/{build_id}/log/"]["put"]
    assert "application/gzip" in log["requestBody"]["content"]
    assert log["responses"]["413"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Detail"}
