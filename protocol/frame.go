package protocol

import (
	"errors"
	"fmt"
	"io"

	"github.com/multiformats/go-varint"
	"google.golang.org/protobuf/proto"
)

// marshal is how every message is encoded: deterministic, so that equal
// messages give equal bytes (the golden vectors rely on it).
var marshal = proto.MarshalOptions{Deterministic: true}

// EncodeFrame returns m encoded as one frame: the unsigned varint length of
// its encoding, then the encoding. It fails if the encoding is empty or
// longer than MaxFrameSize.
func EncodeFrame(m proto.Message) ([]byte, error) {
	size := marshal.Size(m)
	if size == 0 {
		return nil, errors.New("protocol: empty message")
	}
	if size > MaxFrameSize {
		return nil, fmt.Errorf("protocol: message is %d bytes, frame limit %d", size, MaxFrameSize)
	}
	buf := make([]byte, varint.UvarintSize(uint64(size)), varint.UvarintSize(uint64(size))+size)
	varint.PutUvarint(buf, uint64(size))
	buf, err := marshal.MarshalAppend(buf, m)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode: %w", err)
	}
	return buf, nil
}

// WriteFrame writes m to w as one frame, in a single Write, and returns the
// number of bytes written.
func WriteFrame(w io.Writer, m proto.Message) (int, error) {
	buf, err := EncodeFrame(m)
	if err != nil {
		return 0, err
	}
	return w.Write(buf)
}

// ReadFrame reads one frame from r and returns its payload. It reads the
// length a byte at a time (with r's ReadByte when r has one), so it never
// consumes bytes past the frame, and checks the length against limit before
// allocating.
//
// It returns io.EOF, unwrapped, when r ends before the frame's first byte.
// A length that is zero, not minimally encoded, over 9 bytes long or over
// limit, and a frame cut short by the end of r, are errors wrapping
// ErrMalformed. Other errors are r's own (a reset or a deadline).
func ReadFrame(r io.Reader, limit int) ([]byte, error) {
	return readFrameInto(r, limit, nil)
}

// readFrameInto is ReadFrame reading the payload into buf when it has the
// capacity, else into a new slice.
func readFrameInto(r io.Reader, limit int, buf []byte) ([]byte, error) {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = &byteReader{r: r}
	}
	n, err := varint.ReadUvarint(br)
	switch {
	case err == io.EOF:
		return nil, io.EOF
	case err == io.ErrUnexpectedEOF:
		return nil, fmt.Errorf("%w: stream ended inside the frame length", ErrMalformed)
	case errors.Is(err, varint.ErrOverflow), errors.Is(err, varint.ErrNotMinimal), errors.Is(err, varint.ErrUnderflow):
		return nil, fmt.Errorf("%w: frame length: %v", ErrMalformed, err)
	case err != nil:
		return nil, err
	case n == 0:
		return nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	case n > uint64(limit):
		return nil, fmt.Errorf("%w: frame of %d bytes, limit %d", ErrMalformed, n, limit)
	}
	if uint64(cap(buf)) >= n {
		buf = buf[:n]
	} else {
		buf = make([]byte, n)
	}
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: stream ended inside a frame of %d bytes", ErrMalformed, n)
		}
		return nil, err
	}
	return buf, nil
}

// byteReader reads one byte at a time from r, so that nothing past the
// varint is consumed.
type byteReader struct {
	r   io.Reader
	buf [1]byte
}

func (b *byteReader) ReadByte() (byte, error) {
	if _, err := io.ReadFull(b.r, b.buf[:]); err != nil {
		return 0, err
	}
	return b.buf[0], nil
}
