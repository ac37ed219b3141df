#!/usr/bin/perl
# Where Cache::Memcached (1.30) sends keys: its `init_buckets` and the bucket choice of
# `get_sock`, transcribed, with `String::CRC32::crc32` replaced by `Compress::Zlib::crc32` (core
# Perl; both are the zlib CRC-32). Prints the `VECTORS` table of `src/lib.rs`:
# `(weights, key, bucket)`, the bucket being the server's index in the list.
#
#   perl plugins/modula/tests/cache-memcached-vectors.pl
use strict;
use warnings;
use Compress::Zlib ();

sub _hashfunc {
    return (Compress::Zlib::crc32(shift) >> 16) & 0x7fff;
}

# Cache::Memcached::init_buckets: a server of weight w fills w consecutive buckets.
sub init_buckets {
    my @servers = @_;
    my @buckets;
    foreach my $v (@servers) {
        if (ref $v eq "ARRAY") {
            for (1 .. $v->[1]) { push @buckets, $v->[0]; }
        } else {
            push @buckets, $v;
        }
    }
    return @buckets;
}

# Cache::Memcached::get_sock, first try (no rehash): buckets[hv % bucketcount].
sub server_for {
    my ($key, @buckets) = @_;
    my $hv = _hashfunc($key);
    return $buckets[$hv % scalar @buckets];
}

my @pools = ([1, 1, 1], [1, 2, 5], [3, 1], [1, 1, 1, 1, 1, 1, 1]);
my @keys = ("foo", "bar", "user:1234", "session:abcdef", "key:0", "key:1", "key:2",
            "123456789", "a", "", "\x{e9}t\x{e9}");
foreach my $weights (@pools) {
    my @servers = map { ["s$_", $weights->[$_]] } 0 .. $#$weights;
    my @buckets = init_buckets(@servers);
    my $list = join(", ", @$weights);
    foreach my $key (@keys) {
        my $server = server_for($key, @buckets);
        (my $index = $server) =~ s/^s//;
        my $escaped = join("", map { ord($_) < 128 ? $_ : sprintf("\\x%02x", ord($_)) } split //, $key);
        printf("    (&[%s], b\"%s\", %d),\n", $list, $escaped, $index);
    }
}
