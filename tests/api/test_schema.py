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
