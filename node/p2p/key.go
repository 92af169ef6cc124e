package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// KeyFile is the name of the node's identity key inside the data directory.
// It is a secret: whoever holds it can act as this peer ID.
const KeyFile = "node.key"

// LoadOrCreateKey returns the node's identity key from dir, creating an
// Ed25519 key (file mode 0600, dir 0700) if there is none, so that the peer
// ID survives restarts. A key file readable by others is refused: it would
// let other users impersonate the node.
func LoadOrCreateKey(dir string) (crypto.PrivKey, error) {
	path := filepath.Join(dir, KeyFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("node key %s has mode %o: it must not be readable by others (chmod 600 %s)", path, fi.Mode().Perm(), path)
		}
		k, err := crypto.UnmarshalPrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("node key %s: %w", path, err)
		}
		return k, nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("node key: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	data, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Write to a temporary name and rename, so a crash never leaves a
	// truncated key behind.
	tmp, err := os.CreateTemp(dir, KeyFile+".tmp*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, err
	}
	return k, nil
}
