package main

import (
	"context"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// store is the example's in-memory storage with the settings Parley needs
// of a provider, through op.Storage's own extension points.
type store struct {
	*storage.Storage
	users      storage.UserStore
	deviceFlow bool
	adminGroup string
}

// client is a registered client whose access tokens are JWTs and which
// may use the device authorization grant.
type client struct {
	op.Client
	deviceFlow bool
}

// AccessTokenType makes the op issue JWT access tokens (the example's
// clients get opaque ones).
func (c client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// GrantTypes adds the device code grant to the client's.
func (c client) GrantTypes() []oidc.GrantType {
	g := c.Client.GrantTypes()
	if c.deviceFlow && !slices.Contains(g, oidc.GrantTypeDeviceCode) {
		g = append(slices.Clip(g), oidc.GrantTypeDeviceCode)
	}
	return g
}

// GetClientByClientID returns the example's client with the settings
// above.
func (s *store) GetClientByClientID(ctx context.Context, clientID string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, clientID)
	if err != nil {
		return nil, err
	}
	return client{Client: c, deviceFlow: s.deviceFlow}, nil
}

// GetPrivateClaimsFromRequest (op.CanGetPrivateClaimsFromRequest) puts
// into JWT access tokens, besides the example's own claims, the user's
// email if the email scope was granted and the admin group for the users
// file's admins: the example puts only the subject, which is the user's
// ID, or in the device flow their user name (the example's device pages
// complete the authorization with it).
func (s *store) GetPrivateClaimsFromRequest(ctx context.Context, req op.TokenRequest, restrictedScopes []string) (map[string]any, error) {
	clientID := ""
	if c, ok := req.(interface{ GetClientID() string }); ok {
		clientID = c.GetClientID()
	}
	claims, err := s.Storage.GetPrivateClaimsFromScopes(ctx, req.GetSubject(), clientID, restrictedScopes)
	if err != nil {
		return nil, err
	}
	if claims == nil {
		claims = map[string]any{}
	}
	u := s.users.GetUserByID(req.GetSubject())
	if u == nil {
		u = s.users.GetUserByUsername(req.GetSubject())
	}
	if u == nil {
		return claims, nil
	}
	if slices.Contains(req.GetScopes(), oidc.ScopeEmail) {
		claims["email"], claims["email_verified"] = u.Email, u.EmailVerified
	}
	if u.IsAdmin && s.adminGroup != "" {
		claims["groups"] = []string{s.adminGroup}
	}
	return claims, nil
}

// deviceRequest gives the example storage the client of a device-flow
// token request, which it records only for its own auth requests: without
// it the refresh token of a device-flow sign-in belongs to no client, and
// neither refreshing nor revoking it works.
func deviceRequest(request op.TokenRequest) op.TokenRequest {
	if d, ok := request.(*op.DeviceAuthorizationState); ok {
		return &storage.AuthRequest{ApplicationID: d.ClientID, UserID: d.Subject, Scopes: d.Scopes}
	}
	return request
}

// CreateAccessToken records an access token (the JWT itself is made of
// the original request).
func (s *store) CreateAccessToken(ctx context.Context, request op.TokenRequest) (string, time.Time, error) {
	return s.Storage.CreateAccessToken(ctx, deviceRequest(request))
}

// CreateAccessAndRefreshTokens records an access token and a refresh
// token.
func (s *store) CreateAccessAndRefreshTokens(ctx context.Context, request op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	return s.Storage.CreateAccessAndRefreshTokens(ctx, deviceRequest(request), currentRefreshToken)
}
