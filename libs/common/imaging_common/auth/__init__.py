"""Staff authentication and authorization (smart-imaging standard 10.2.3, 10.3.4).

    from imaging_common.auth import Principal, require_roles
    user: Annotated[Principal, Depends(require_roles("clerk", "admin"))]

Tokens are RS256 JWTs signed by registration (`TokenIssuer`), verified by every service
(`TokenVerifier`, built by the service factory), backed by Redis sessions (`SessionStore`).
"""

from imaging_common.auth.dependencies import require_roles
from imaging_common.auth.keys import KeyConfigurationError, PublicKey, SigningKey, jwks
from imaging_common.auth.roles import ROLES
from imaging_common.auth.sessions import RefreshRefused, Session, SessionStore
from imaging_common.auth.tokens import AuthError, IssuedTokens, Principal, TokenIssuer, TokenVerifier

__all__ = [
    "ROLES", "AuthError", "IssuedTokens", "KeyConfigurationError", "Principal", "PublicKey", "RefreshRefused",
    "Session", "SessionStore", "SigningKey", "TokenIssuer", "TokenVerifier", "jwks", "require_roles",
]
