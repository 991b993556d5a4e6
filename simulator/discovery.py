"""The OpenID Connect discovery document MSAL reads first (the v2.0 endpoint's shape)."""

from __future__ import annotations

from simulator.tenants import MULTI_TENANT_SEGMENTS


def openid_configuration(base: str, segment: str) -> dict[str, object]:
    """The document at ``{base}/{segment}/v2.0/.well-known/openid-configuration``."""
    # Like Entra ID, the multi-tenant endpoints publish a templated issuer.
    issuer_tenant = "{tenantid}" if segment in MULTI_TENANT_SEGMENTS else segment
    tenant_url = f"{base}/{segment}"
    return {
        "issuer": f"{base}/{issuer_tenant}/v2.0",
        "authorization_endpoint": f"{tenant_url}/oauth2/v2.0/authorize",
        "token_endpoint": f"{tenant_url}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{tenant_url}/oauth2/v2.0/devicecode",
        "jwks_uri": f"{tenant_url}/discovery/v2.0/keys",
        "end_session_endpoint": f"{tenant_url}/oauth2/v2.0/logout",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "client_secret_basic",
        ],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "name",
            "oid",
            "tid",
            "ver",
            "preferred_username",
        ],
        "request_uri_parameter_supported": False,
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": base.split("://", 1)[1],
    }
