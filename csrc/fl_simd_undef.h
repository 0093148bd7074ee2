/* Ends one inclusion of fl_simd.h. */
#undef FL_V
#undef FL_VW
#undef FL_VLOAD
#undef FL_VSTORE
#undef FL_VSET1
#undef FL_VADD
#undef FL_VMAX
#undef FL_VIS1
#undef FL_VNOT1
#undef FL_NV
#undef FL_VIDX
#undef FL_VGATHER
#undef FL_VSCATTER
#undef FL_HAVE_GATHER
#undef FL_HAVE_SCATTER
