package attest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// Signer signs messages with a key whose private half this process never
// holds (KMS) or holds only in memory (KeySigner, for tests and a dev key
// pair). Signatures are ECDSA P-256 over SHA-256, ASN.1 DER: what cosign
// writes and verifies for its default key type.
type Signer interface {
	// Sign signs msg (the whole message; the signer hashes it).
	Sign(ctx context.Context, msg []byte) ([]byte, error)
	// Public is the verification key.
	Public() crypto.PublicKey
	// Ref names the key for humans and for cosign (awskms:///alias/..., or a file).
	Ref() string
}

// KMSSigner signs with an asymmetric AWS KMS key (ECC_NIST_P256, SIGN_VERIFY).
// The key reference is cosign's: awskms://[ENDPOINT]/KEY, KEY a key id, an
// alias/NAME or a key or alias ARN; an empty ENDPOINT means the SDK's own
// resolution (AWS_ENDPOINT_URL_KMS locally, the regional endpoint on AWS), a
// non-empty one is https://ENDPOINT, as cosign reads it.
type KMSSigner struct {
	ref      string
	endpoint string
	keyID    string
	arn      string // the key's ARN, from GetPublicKey
	client   *kms.Client
	pub      *ecdsa.PublicKey
}

// kmsRawMax is the largest message KMS signs as MessageType RAW (it hashes
// it itself); longer messages are sent as their SHA-256 digest.
const kmsRawMax = 4096

// NewKMSSigner resolves ref and checks, before anything is built or pushed,
// that the key exists, is an ECC_NIST_P256 signing key, and that this
// identity may Sign with it: one probe signature, verified here against the
// key's public half (which also catches a KMS that signs something else
// than it was asked to). Errors are one line naming the key and the fix.
func NewKMSSigner(ctx context.Context, ref, region string) (*KMSSigner, error) {
	s, err := openKMSKey(ctx, ref, region)
	if err != nil {
		return nil, err
	}
	if _, err := s.Sign(ctx, []byte("webapp-pipeline signing probe")); err != nil {
		return nil, err
	}
	return s, nil
}

// KMSPublicKey is the public half of the signing key ref (kms:GetPublicKey
// only: what a verifier, e.g. `reproduce`, may do without kms:Sign), checked
// to be an ECC_NIST_P256 signing key.
func KMSPublicKey(ctx context.Context, ref, region string) (crypto.PublicKey, error) {
	s, err := openKMSKey(ctx, ref, region)
	if err != nil {
		return nil, err
	}
	return s.pub, nil
}

// openKMSKey resolves ref and reads its public half; it signs nothing.
func openKMSKey(ctx context.Context, ref, region string) (*KMSSigner, error) {
	endpoint, keyID, err := parseKMSRef(ref)
	if err != nil {
		return nil, err
	}
	var opts []func(*config.LoadOptions) error
	if region == "" {
		region = regionOfARN(keyID)
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: AWS configuration: %w", ref, err)
	}
	client := kms.NewFromConfig(cfg, func(o *kms.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String("https://" + endpoint)
		}
	})
	s := &KMSSigner{ref: ref, keyID: keyID, client: client, endpoint: endpoint}
	out, err := client.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return nil, fmt.Errorf("signing key %s: kms:GetPublicKey failed (does the key exist in region %s, and may this role use it?): %s",
			ref, cfg.Region, oneLine(err))
	}
	// The key's kind, from its public half (moto fills only the deprecated CustomerMasterKeySpec).
	spec := string(out.KeySpec)
	if spec == "" {
		spec = string(out.CustomerMasterKeySpec) //nolint:staticcheck // what moto returns
	}
	pub, err := x509.ParsePKIXPublicKey(out.PublicKey)
	ec, ok := pub.(*ecdsa.PublicKey)
	if err != nil || !ok || ec.Curve != elliptic.P256() || out.KeyUsage != kmstypes.KeyUsageTypeSignVerify {
		return nil, fmt.Errorf("signing key %s is a %s %s key: create an asymmetric ECC_NIST_P256 SIGN_VERIFY key (what cosign verifies)",
			ref, spec, out.KeyUsage)
	}
	s.pub = ec
	// AWS answers GetPublicKey with the key's ARN; moto with its bare id.
	if s.arn = aws.ToString(out.KeyId); !strings.HasPrefix(s.arn, "arn:") {
		if d, err := client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)}); err == nil && d.KeyMetadata != nil {
			s.arn = aws.ToString(d.KeyMetadata.Arn)
		}
	}
	return s, nil
}

// Sign asks KMS to sign msg (RAW up to 4 KiB, else its digest) and checks
// the signature against the public key before returning it.
func (s *KMSSigner) Sign(ctx context.Context, msg []byte) ([]byte, error) {
	id := s.keyID
	if s.arn != "" {
		id = s.arn // the key checked at start, even if an alias moves meanwhile
	}
	in := &kms.SignInput{KeyId: aws.String(id), SigningAlgorithm: kmstypes.SigningAlgorithmSpecEcdsaSha256}
	if len(msg) <= kmsRawMax {
		in.Message, in.MessageType = msg, kmstypes.MessageTypeRaw
	} else {
		sum := sha256.Sum256(msg)
		in.Message, in.MessageType = sum[:], kmstypes.MessageTypeDigest
	}
	out, err := s.client.Sign(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: kms:Sign failed (the build role needs kms:Sign on it): %s", s.ref, oneLine(err))
	}
	if !verifyECDSA(s.pub, msg, out.Signature) {
		return nil, fmt.Errorf("signing key %s: KMS returned a signature its public key does not verify (MessageType %s, %d bytes): this KMS does not sign what it is asked to",
			s.ref, in.MessageType, len(msg))
	}
	return out.Signature, nil
}

// Public is the key's public half (from kms:GetPublicKey).
func (s *KMSSigner) Public() crypto.PublicKey { return s.pub }

// Ref is the key reference as given (cosign's --key syntax).
func (s *KMSSigner) Ref() string { return s.ref }

// VerifyRef is the reference the instances should verify with, for
// image.env's SIGNING_KEY: the key by its ARN (an alias can be pointed at
// another key by whoever may update it), awskms://[ENDPOINT]/arn:aws:kms:....
func (s *KMSSigner) VerifyRef() string {
	if s.arn == "" {
		return s.ref
	}
	return "awskms://" + s.endpoint + "/" + s.arn
}

func parseKMSRef(ref string) (endpoint, keyID string, err error) {
	rest, ok := strings.CutPrefix(ref, "awskms://")
	if !ok {
		return "", "", fmt.Errorf("signing key %q: want awskms://[ENDPOINT]/KEY (e.g. awskms:///alias/webapp-signing)", ref)
	}
	endpoint, keyID, ok = strings.Cut(rest, "/")
	if !ok || keyID == "" {
		return "", "", fmt.Errorf("signing key %q: no key after the endpoint: want awskms://[ENDPOINT]/KEY (e.g. awskms:///alias/webapp-signing)", ref)
	}
	return endpoint, keyID, nil
}

// regionOfARN is the region of arn:aws:kms:REGION:..., else "".
func regionOfARN(id string) string {
	if p := strings.Split(id, ":"); len(p) > 4 && p[0] == "arn" {
		return p[3]
	}
	return ""
}

// KeySigner signs with an ECDSA P-256 private key held in memory (tests, or
// a dev key pair); the key is never written or logged by this package.
type KeySigner struct {
	Key  *ecdsa.PrivateKey
	Name string // shown as Ref
}

// Sign signs SHA-256(msg).
func (k KeySigner) Sign(_ context.Context, msg []byte) ([]byte, error) {
	sum := sha256.Sum256(msg)
	return ecdsa.SignASN1(rand.Reader, k.Key, sum[:])
}

// Public is the public half.
func (k KeySigner) Public() crypto.PublicKey { return &k.Key.PublicKey }

// Ref names the key.
func (k KeySigner) Ref() string { return k.Name }

func verifyECDSA(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	sum := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(pub, sum[:], sig)
}

// dsseSigner adapts a Signer to DSSE's signer interface.
type dsseSigner struct{ s Signer }

func (d dsseSigner) Sign(ctx context.Context, data []byte) ([]byte, error) {
	return d.s.Sign(ctx, data)
}
func (d dsseSigner) KeyID() (string, error) { return "", nil } // cosign writes none

// oneLine flattens an error for a one-line message.
func oneLine(err error) string {
	var msg string
	if err != nil {
		msg = err.Error()
	}
	return strings.Join(strings.Fields(msg), " ")
}
