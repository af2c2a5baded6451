/*
 * Export macro of libgnuradio-isac.
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_ISAC_API_H
#define INCLUDED_ISAC_API_H

#include <gnuradio/attributes.h>

#ifdef gnuradio_isac_EXPORTS
#define ISAC_API __GR_ATTR_EXPORT
#else
#define ISAC_API __GR_ATTR_IMPORT
#endif

#endif /* INCLUDED_ISAC_API_H */
